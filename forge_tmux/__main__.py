from forge_tmux.cli import main

raise SystemExit(main())
