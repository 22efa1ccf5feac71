from effdet_deploy.cli import main

raise SystemExit(main())
