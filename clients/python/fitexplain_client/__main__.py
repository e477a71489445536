"""`python -m fitexplain_client ...` is the `fitexplain` command."""

from fitexplain_client.cli import main

main()
