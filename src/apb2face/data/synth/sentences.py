"""What the built-in people say: a corpus of short English sentences, and each person's share of it."""

from __future__ import annotations

import numpy as np

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We will meet at the station just before nine in the morning.",
    "A large wave broke over the harbour wall and soaked the fishermen.",
    "My grandmother grew tomatoes, beans and pumpkins in her garden.",
    "Could you tell me the way to the nearest post office?",
    "The weather forecast says it will rain all weekend.",
    "Every child should learn to swim before the age of ten.",
    "He opened the window and a cold breeze filled the room.",
    "The museum is closed on Mondays but open late on Fridays.",
    "She played the piano beautifully at the concert last night.",
    "Bright yellow leaves covered the path through the park.",
    "Our train was delayed by almost an hour because of the snow.",
    "They painted the old boat blue and white before the summer.",
    "I would like a cup of tea with milk and no sugar, please.",
    "The little dog barked loudly at the postman every morning.",
    "Mountains rise above the clouds in the far north of the country.",
    "Remember to switch off the lights when you leave the office.",
    "The library has thousands of books about history and science.",
    "We watched the sun go down behind the hills.",
    "A good night's sleep helps you think more clearly.",
    "The children built a huge castle out of sand on the beach.",
    "Who left the back door open during the storm?",
    "Fresh bread from the bakery smells wonderful in the morning.",
    "The pilot announced that we would land in twenty minutes.",
    "Music can change the mood of a room in an instant.",
    "Please speak slowly so that everyone can understand you.",
    "The river flows quietly through the middle of the town.",
    "My brother bought a new bicycle with his first pay check.",
    "An apple a day keeps the doctor away, or so they say.",
    "The team worked late to finish the project on time.",
    "Owls hunt at night and sleep during the day.",
    "We need more chairs for the guests in the garden.",
    "The old clock on the wall stopped at a quarter past three.",
    "How many languages can you speak fluently?",
    "The market sells fruit, vegetables, fish and flowers.",
    "A thick fog rolled in from the sea before dawn.",
    "She wrote a long letter to her friend in Australia.",
    "Turn left at the bridge and follow the road to the farm.",
    "The students asked many questions after the lecture.",
    "Warm soup is the best food on a cold winter evening.",
    "The baby laughed when the puppy licked her hand.",
    "They found an old map hidden under the floorboards.",
    "Our neighbours are moving to a smaller house by the lake.",
    "The news spread quickly through the whole village.",
    "Keep your passport somewhere safe while you travel.",
    "Thunder rumbled in the distance as the clouds grew dark.",
    "He fixed the broken chair with glue and a few nails.",
    "Every morning she runs five miles along the river.",
    "The restaurant on the corner serves excellent pizza.",
    "Bees carry pollen from one flower to the next.",
    "Would you mind opening the door for me?",
    "The scientist measured the temperature every hour.",
    "Winter came early and the lake froze over in November.",
    "I have never seen so many stars in the sky.",
    "The shop assistant wrapped the present in red paper.",
    "Please write your name at the top of the page.",
    "Our football team won the match by two goals.",
    "The path up the mountain is steep and rocky.",
    "She keeps her keys in a small box by the door.",
    "Good friends are hard to find and easy to lose.",
    "The farmer woke up early to feed the cows.",
    "A ship appeared on the horizon just after midday.",
    "My phone battery died in the middle of the call.",
    "The painter mixed blue and yellow to make green.",
    "Bring an umbrella, because the clouds look heavy.",
    "The city lights sparkled across the dark water.",
    "We planted an oak tree in the middle of the field.",
    "Please put the dishes away after dinner.",
    "Jazz musicians often improvise during their solos.",
    "The cat slept all afternoon in a patch of sunlight.",
    "Nobody knew the answer to the final question.",
]


def choose_sentences(identity_index: int, count: int, seed: int) -> list[str]:
    """`count` different sentences for one identity (seeded); beyond the list, sentences are paired up."""
    rng = np.random.default_rng([seed, 104, identity_index])
    order = list(rng.permutation(len(SENTENCES)))
    out = [SENTENCES[k] for k in order[:count]]
    j = 0
    while len(out) < count:
        a, b = order[j % len(order)], order[(j * 7 + 3) % len(order)]
        if a != b and f"{SENTENCES[a]} {SENTENCES[b]}" not in out:
            out.append(f"{SENTENCES[a]} {SENTENCES[b]}")
        j += 1
    return out
