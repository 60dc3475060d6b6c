"""Training the trace network: pages rendered on the fly (:mod:`.data`), training from scratch
(:mod:`.train`) and fine-tuning on reviewed labels (:mod:`.finetune`).

Training may import the inference pipeline (to validate); inference never imports training.
"""
