"""Records: reading record folders, importing them, statistics, reproducing and writing record folders."""
