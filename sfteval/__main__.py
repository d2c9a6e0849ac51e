from sfteval.cli import main

main()
