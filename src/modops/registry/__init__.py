"""Everything that talks to MLflow: tracking setup, model packaging, promotion.

Core modules (data, models, training, evaluation, scoring) never import this package.
"""
