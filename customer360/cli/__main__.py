from customer360.cli.commands import main

main()
