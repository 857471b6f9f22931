-- The engine re-reads the campaigns it must act on every second; message
-- batches make the campaigns table grow by thousands of rows an hour, so that
-- read goes through an index of the running and paused ones only.
CREATE INDEX campaigns_active ON campaigns (id) WHERE status IN ('running', 'paused');
