"""Where a synthesize run's trees are searched: in this process, or on Ray workers."""
