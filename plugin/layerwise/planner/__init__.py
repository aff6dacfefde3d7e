"""From a config to priced layouts: rank grid, records, pricing, baseline splits, layer-wise
replicas, the plan and its explanation."""
