"""Files in and out: finding inputs (inputs), reading rows (readers, trees), writing shards (writers)."""
