"""Who may call, how often and at what cost: API keys and roles, rate limits, the daily
budget, A/B experiments and the reports that AdminService serves."""
