"""What every part of grasp_bench uses (process handling today; config, stores and run
directories as the redesign moves them here)."""
