from experiments.long_range.main import main

main()
