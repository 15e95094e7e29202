-- Usage reports are kept for timers.usage_history_days; the job that forgets older ones
-- finds them by age.
CREATE INDEX usage_reports_age ON usage_reports (reported_at);
