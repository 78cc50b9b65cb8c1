from monarch.cli import run

run()
