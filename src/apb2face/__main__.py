from apb2face.cli.main import main

raise SystemExit(main())
