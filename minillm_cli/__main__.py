from minillm_cli.cli.main import main

main()
