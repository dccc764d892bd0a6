from __future__ import annotations

import os
import sys

from apb2face.cli.native_logs import native_log_filter


def test_native_log_lines_are_dropped_and_everything_else_passes(capfd):
    with native_log_filter():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"W0000 00:00:1795523900.564348   21085 inference_feedback_manager.cc:114] Feedback manager\n")
        os.write(2, b"I0000 00:00:1795523900.5 77 gl_context.cc:357] GL version: 3.2\n")
        print("progress  10%", end="\r", file=sys.stderr, flush=True)
        os.write(2, b"W")  # a native line arriving in pieces
        os.write(2, b"0000 00:00:12.5   7 x.cc:1] split\n")
        print("Warning: something a user should see", file=sys.stderr, flush=True)
        print("apb2face generate: error: x.png: no face found in the image", file=sys.stderr)
    err = capfd.readouterr().err
    assert err == (
        "progress  10%\rWarning: something a user should see\n"
        "apb2face generate: error: x.png: no face found in the image\n"
    )


def test_output_after_the_block_goes_straight_to_stderr(capfd):
    with native_log_filter():
        pass
    os.write(2, b"W0000 00:00:1.0 1 a.cc:1] after\n")
    assert "after" in capfd.readouterr().err


def test_a_native_line_torn_in_two_by_our_error_line_leaves_only_ours(capfd):
    """TFLite writes "INFO: " and the rest of its line separately, from its own thread; our error can land between."""
    with native_log_filter():
        os.write(2, b"INFO: ")
        print(
            "apb2face generate: error: out.mp4: cannot write the output (File too large)", file=sys.stderr, flush=True
        )
        os.write(2, b"Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert capfd.readouterr().err == "apb2face generate: error: out.mp4: cannot write the output (File too large)\n"


def test_native_lines_and_torn_prefixes_after_a_progress_bar_redraw_are_dropped(capfd):
    """A progress bar ends its redraws in carriage returns, not newlines: a native line, or the torn prefix in front
    of our error, can follow one on the same line. The bar stays; the native text goes."""
    with native_log_filter():
        os.write(2, b"generate:  20%|##        | 1/5\r")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"generate:  40%|####      | 2/5\r")
        os.write(2, b"INFO: ")
        os.write(2, b"apb2face generate: error: out.mp4: cannot write the output\n")
        os.write(2, b"Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    err = capfd.readouterr().err
    assert "TensorFlow" not in err and "INFO" not in err
    assert err.endswith("2/5\rapb2face generate: error: out.mp4: cannot write the output\n")


def test_a_native_prefix_cut_off_when_the_block_ends_does_not_prefix_our_error_after_it(capfd):
    """TFLite's thread wrote "INFO: " and the command ended before the rest: the error printed after the block must
    start its own line; a progress bar before the fragment stays, and an unfinished line of ours passes."""
    with native_log_filter():
        os.write(2, b"generate:  40%|####      | 2/5\r")
        os.write(2, b"INFO: ")
    print("apb2face generate: error: wall.png: no face found in the image", file=sys.stderr, flush=True)
    assert capfd.readouterr().err == (
        "generate:  40%|####      | 2/5\rapb2face generate: error: wall.png: no face found in the image\n"
    )
    with native_log_filter():
        os.write(2, b"I0000 00:00:1.0 1 a.cc:1] cut off")
    with native_log_filter():
        os.write(2, b"saving")
    assert capfd.readouterr().err == "saving"


def test_a_torn_prefix_in_front_of_our_line_read_before_its_newline_is_still_removed(capfd):
    """print() writes the text and its newline in two writes; the filter may read between them, with TFLite's torn
    "INFO: " in front: the line is held until its newline, then passes without the prefix."""
    import time

    with native_log_filter():
        os.write(2, b"INFO: ")
        os.write(2, b"apb2face generate: error: out.mp4: cannot write the output (File too large)")
        time.sleep(0.2)  # the filter reads the unfinished line now
        os.write(2, b"\n")
        os.write(2, b"INFO: ")
        os.write(2, b"apb2face generate: error: unfinished")
    assert capfd.readouterr().err == (
        "apb2face generate: error: out.mp4: cannot write the output (File too large)\n"
        "apb2face generate: error: unfinished"
    )
