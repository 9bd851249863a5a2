from smttask.cli import main

main()
