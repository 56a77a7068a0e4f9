"""Running a plan: the driver, the scheduler and its Ray launcher, progress, leases, validity, submission."""
