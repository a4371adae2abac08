from eggsearch.cli import main

raise SystemExit(main())
