"""Reports: tables, comparisons with the paper, the web page, plots, retrieval and the pretext audit."""
