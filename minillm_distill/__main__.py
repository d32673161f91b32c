from minillm_distill.cli.main import main

main()
