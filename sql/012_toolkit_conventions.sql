-- Issue 12: the smart account's domain name, and virtual account names unique ignoring
-- case (public automation says "Default" for "DEFAULT"; lookups ignore case too).

ALTER TABLE accounts ADD COLUMN domain text;

-- Names that differ only by case may exist already. The oldest of each such group keeps
-- its name; each later one becomes "<name>~<n>" with the smallest n >= 2 free (ignoring
-- case) in its account, cut so that it stays within 100 characters. Each rename is an
-- audit event, so that the administrator learns the new name.
DO $$
DECLARE
    dup record;
    n integer;
    candidate text;
BEGIN
    FOR dup IN
        SELECT va.id, va.account_id, va.name, a.name AS account
        FROM virtual_accounts va JOIN accounts a ON a.id = va.account_id
        WHERE EXISTS (
            SELECT 1 FROM virtual_accounts older
            WHERE older.account_id = va.account_id AND lower(older.name) = lower(va.name)
              AND older.id < va.id
        )
        ORDER BY va.id
    LOOP
        n := 2;
        LOOP
            candidate := left(dup.name, 100 - length('~' || n)) || '~' || n;
            EXIT WHEN NOT EXISTS (
                SELECT 1 FROM virtual_accounts other
                WHERE other.account_id = dup.account_id AND lower(other.name) = lower(candidate)
            );
            n := n + 1;
        END LOOP;
        UPDATE virtual_accounts SET name = candidate WHERE id = dup.id;
        INSERT INTO events (account_id, actor, action, target, details)
        VALUES (
            dup.account_id, 'migration 012', 'virtual_account.renamed',
            dup.account || '/' || candidate,
            jsonb_build_object('from', dup.name, 'to', candidate,
                               'reason', 'virtual account names are unique ignoring case')
        );
    END LOOP;
END
$$;

ALTER TABLE virtual_accounts DROP CONSTRAINT virtual_accounts_account_id_name_key;
CREATE UNIQUE INDEX virtual_accounts_name_ci ON virtual_accounts (account_id, lower(name));
