"""Fine-tuning on reviewed corrections: settings and recommendations, training planes and patches, the loop,
the guard that judges versions, distillation from a pixel forest, and DDP."""
