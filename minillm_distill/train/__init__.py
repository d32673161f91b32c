"""The distillation loop: rollout -> score -> loss -> optimizer step, under DeepSpeed."""
