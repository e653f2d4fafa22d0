-- The Connect page's statement parameters, kept with the LoginId it connected: GetStatements
-- refuses a Connect card whose page lacked `detailsAndStatementEnable=true`, and uses its
-- `monthsOfStatements` when the request names no `NumberOfStatements`. NULL months: the card
-- was not connected through the Connect page (/Authorize, /AuthorizeAsync), and is unaffected.
ALTER TABLE logins ADD COLUMN connect_statements_enabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE logins ADD COLUMN connect_statement_months TEXT;
