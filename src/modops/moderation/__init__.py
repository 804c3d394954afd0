"""The moderation service: hash banks, OCR rules, the policy pipeline, the review queue, the API.

Yelp's half of the mission: uploads pass known-content banks (perceptual hashes), a high-recall
first stage, a precision stage (the cascade's second model, OCR rules, context thresholds) and
land as ``allowed``, ``pending_review`` (hidden), ``blocked`` or ``discarded``; reviewers'
decisions become labels and bank entries. Nothing here is imported by the training code.
"""
