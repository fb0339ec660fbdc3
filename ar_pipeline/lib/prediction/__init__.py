"""Payment-date prediction and risk scores (features, models, backtest). See README "Risk scores"."""
