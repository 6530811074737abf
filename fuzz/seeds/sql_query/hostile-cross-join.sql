SELECT count(*) FROM processes a, processes b, processes c, processes d, processes e, processes f
