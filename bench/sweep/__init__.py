"""The sweep: the loop over strategies, one strategy's run, resume, the memory guard."""
