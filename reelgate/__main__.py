from reelgate.cli.main import main

main()
