"""Pure data and decisions: plan, inventory, order, health, diff, targeting, values, rollout. No I/O."""
