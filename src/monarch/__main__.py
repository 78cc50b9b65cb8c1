from monarch.cli import main

main()
