"""Science analyses built on the layers below: the planted direction and the implicit
factor (its task, truths, measurements, reports and removal study)."""
