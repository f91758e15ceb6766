"""Sandbox servers standing in for KnowBe4 and the PSAs: the outside world, no product imports."""
