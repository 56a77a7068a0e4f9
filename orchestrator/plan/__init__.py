"""Plans: a spec expanded into jobs with identities (build), script jobs, data checks, estimates."""
