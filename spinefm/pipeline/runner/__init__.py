"""Many films through the loop under Lightning: inputs, loading, the predict loop and the writers."""
