-- A product's usage report in one round trip (satellite/storage/usage_report.py): the
-- busiest request of the device API did its work in seven (BEGIN, the product's lock and
-- nonce, the usage, the pool lines, the reservations, the export keys, COMMIT). One call
-- of this function is one statement, atomic on its own.
--
-- The caller has verified the request's signature with p_jwk, the product's key as it last
-- read it, and checked the nonce's MAC. Under the product's row lock this refuses, writing
-- nothing, unless that still is the product's key, the product is registered with an ID
-- certificate that holds at p_now, and the nonce was not used (it is used now); the caller
-- tells why a request was refused (services/usage_report.py, by the envelope's checks).
-- Else the product's host identity is forgotten if p_forget_host, and the usage statement
-- runs: the product's usage becomes p_tags/p_counts, the report joins the history, the
-- contact is recorded, the difference goes to the totals (004) if its usage is counted;
-- last, the pool alert lock of its virtual account is taken shared (p_pool_lock_base + its
-- id). Returned: what is in use per tag in its virtual account after (total) and what the
-- report changed of that (change: none where its usage had lapsed); what the virtual
-- account's positions are computed from, its pool lines, reservations and export keys, read
-- as storage/licenses.py, reservations.py and export_keys.py read them for one virtual
-- account; the keys of its open alerts when the report released all usage.
--
-- Each statement runs with a snapshot taken after the lock (a function in PL/pgSQL, not
-- one statement of CTEs): a report of the same product that committed while this one
-- waited is seen. PL/pgSQL keeps each statement's plan for the session, and here always
-- the plan made once without the values (generic; force_generic_plan below), which does
-- not grow with the products, as the usage statement's lapsed usage is written for
-- (storage/usage_totals.py, 021). Left to choose, PostgreSQL kept planning the usage
-- statement for every call at a million products (its custom plan looked cheaper): 0.9
-- ms of CPU a report instead of 0.25 (bench/report_plans.py).
CREATE FUNCTION report_usage(
    p_product uuid,
    p_jwk jsonb,
    p_nonce text,
    p_forget_host boolean,
    p_tags text[],
    p_counts integer[],
    p_report jsonb,
    p_now timestamptz,
    p_day date,
    p_pool_lock_base bigint
) RETURNS TABLE (
    refusal text,
    virtual_account_id bigint,
    virtual_account text,
    account_id bigint,
    authorization_expires_at timestamptz,
    tags text[],
    totals bigint[],
    changes bigint[],
    lines jsonb,
    reserved jsonb,
    exported jsonb,
    open_alerts text[]
) LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    product record;
    v_va bigint;
BEGIN
    -- (Its virtual account's name and account from scalar subqueries, as
    -- storage/product_instances.py reads them: on the row as it is once locked.)
    SELECT p.public_jwk, p.status, p.certificate_expires_at, p.hostname, p.ip_address,
        p.virtual_account_id AS va, p.authorization_expires_at,
        (SELECT name FROM virtual_accounts WHERE id = p.virtual_account_id) AS va_name,
        (SELECT account_id FROM virtual_accounts WHERE id = p.virtual_account_id) AS account
    INTO product FROM product_instances p WHERE p.id = p_product FOR UPDATE;
    IF NOT FOUND THEN
        refusal := 'no such product instance';
    ELSIF product.public_jwk IS DISTINCT FROM p_jwk THEN
        refusal := 'another key';
    ELSIF product.status <> 'registered' OR product.certificate_expires_at <= p_now THEN
        refusal := 'not registered';
    ELSE
        INSERT INTO used_nonces (nonce) VALUES (p_nonce) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            refusal := 'nonce used';
        END IF;
    END IF;
    IF refusal IS NOT NULL THEN
        RETURN NEXT;
        RETURN;
    END IF;

    v_va := product.va;
    virtual_account_id := v_va;
    virtual_account := product.va_name;
    account_id := product.account;
    authorization_expires_at := product.authorization_expires_at;
    IF p_forget_host AND (coalesce(product.hostname, '') <> ''
        OR coalesce(product.ip_address, '') <> '') THEN
        -- (The change stamps the row for the next sync request, 008.)
        UPDATE product_instances SET hostname = NULL, ip_address = NULL WHERE id = p_product;
    END IF;

    -- The usage statement (usage_totals.py: the shard, the totals added in key order, the
    -- lapsed usage of the others subtracted as IN_USE does).
    WITH new AS (SELECT tag, count FROM unnest(p_tags, p_counts) AS n(tag, count)),
    old AS (SELECT tag, count FROM product_usage WHERE product_id = p_product),
    counted AS (SELECT counted_in AS va, (authorization_expires_at <= p_now
        OR certificate_expires_at <= p_now) AS lapsed FROM product_instances
        WHERE id = p_product AND counted_in IS NOT NULL),
    deltas AS (SELECT counted.va, counted.lapsed, coalesce(new.tag, old.tag) AS tag,
        get_byte(uuid_send(p_product), 15) % 16 AS shard,
        coalesce(new.count, 0) - coalesce(old.count, 0) AS d
        FROM new FULL JOIN old ON old.tag = new.tag CROSS JOIN counted),
    gone AS (DELETE FROM product_usage WHERE product_id = p_product
        AND NOT (tag = ANY(p_tags))),
    set AS (INSERT INTO product_usage (product_id, tag, count)
        SELECT p_product, tag, count FROM new
        ON CONFLICT (product_id, tag) DO UPDATE SET count = EXCLUDED.count),
    history AS (INSERT INTO usage_reports (product_id, reported_at, usage)
        VALUES (p_product, p_now, p_report)),
    contact AS (UPDATE product_instances SET last_contact_at = p_now WHERE id = p_product),
    totals AS (INSERT INTO virtual_account_usage (virtual_account_id, tag, shard, in_use)
        SELECT va, tag, shard, sum(d) FROM deltas GROUP BY va, tag, shard
        HAVING sum(d) <> 0 ORDER BY va, tag, shard
        ON CONFLICT (virtual_account_id, tag, shard)
        DO UPDATE SET in_use = virtual_account_usage.in_use + EXCLUDED.in_use),
    after AS (SELECT tag, sum(n)::bigint AS total, sum(c)::bigint AS change FROM (
        SELECT tag, in_use n, 0 c FROM virtual_account_usage WHERE virtual_account_id = v_va
        UNION ALL SELECT tag, d, CASE WHEN lapsed THEN 0 ELSE d END FROM deltas
            WHERE deltas.va = v_va
        UNION ALL SELECT u.tag, -u.count, 0 FROM product_instances p
            CROSS JOIN LATERAL (SELECT tag, count FROM product_usage
                WHERE product_id = p.id OFFSET 0) AS u
            WHERE p.counted_in = ANY(ARRAY[v_va]) AND p.status = 'registered'
            AND least(p.authorization_expires_at, p.certificate_expires_at)
                BETWEEN '-infinity' AND p_now
            AND p.id <> p_product
        UNION ALL SELECT new.tag, -new.count, 0 FROM new CROSS JOIN counted
            WHERE counted.lapsed AND counted.va = v_va
    ) AS sums GROUP BY tag)
    -- What the positions are computed from, read in the same statement (no write of it
    -- changes them): the pool lines, what reservations hold on p_day (per product and tag
    -- the larger of the confirmed and the pending code), the export keys granted; and the
    -- keys of the open alerts, when all usage was released.
    SELECT array_agg(tag ORDER BY tag), array_agg(total ORDER BY tag),
        array_agg(change ORDER BY tag),
        (SELECT coalesce(jsonb_agg(jsonb_build_object('id', l.id, 'tag', l.tag,
            'quantity', l.quantity, 'license_type', l.license_type,
            'start_date', l.start_date, 'end_date', l.end_date,
            'subscription_id', l.subscription_id, 'export_restricted', l.export_restricted,
            'source', l.source) ORDER BY l.tag, l.id), '[]')
            FROM license_lines l WHERE l.virtual_account_id = v_va),
        (SELECT coalesce(jsonb_object_agg(tag, total), '{}') FROM (
            SELECT tag, sum(held)::bigint AS total FROM (
                SELECT l.product_id, l.tag, greatest(
                    sum(l.quantity) FILTER (WHERE l.stage = 'current'),
                    sum(l.quantity) FILTER (WHERE l.stage = 'pending')) AS held
                FROM reservation_licenses l
                JOIN reservations r ON r.product_id = l.product_id
                JOIN product_instances p ON p.id = l.product_id
                WHERE r.status = 'active' AND p.status = 'registered'
                AND p.virtual_account_id = v_va
                AND (l.start_date IS NULL OR l.start_date <= p_day)
                AND (l.end_date IS NULL OR l.end_date >= p_day)
                GROUP BY l.product_id, l.tag) AS held
            GROUP BY tag) AS by_tag),
        (SELECT coalesce(jsonb_object_agg(tag, n), '{}') FROM (
            SELECT k.tag, count(*) AS n FROM export_keys k
            WHERE k.virtual_account_id = v_va AND k.status = 'granted'
            GROUP BY k.tag) AS by_tag),
        CASE WHEN cardinality(p_tags) = 0 THEN ARRAY(
            SELECT a.dedupe_key FROM alerts a
            WHERE a.account_id = product.account AND a.cleared_at IS NULL
            AND a.virtual_account_id = v_va ORDER BY a.dedupe_key) END
    INTO tags, totals, changes, lines, reserved, exported, open_alerts FROM after;
    -- The pool alert lock of its virtual account (services/licenses.py), shared, last: as
    -- every change of usage takes it, after its rows and the totals (taken before them,
    -- a report waited here for a registration that waited for the report's totals row).
    -- Reports do not wait for each other; one does not commit while a shortage refresh,
    -- which takes the lock alone, reads the pool.
    PERFORM pg_advisory_xact_lock_shared(p_pool_lock_base + v_va);
    RETURN NEXT;
END
$$;
