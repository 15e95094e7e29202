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
-- id). Returned: what is in use per tag in its virtual account after (in_use) and what the
-- report changed of that (changes: none where its usage had lapsed); what the virtual
-- account's positions are computed from, its pool lines, reservations and export keys
-- (through the functions the storage modules read them with, below); the keys of its open
-- alerts when the report released all usage.
--
-- Each statement runs with a snapshot taken after the lock (a function in PL/pgSQL, not
-- one statement of CTEs): a report of the same product that committed while this one
-- waited is seen. PL/pgSQL keeps each statement's plan for the session, and here always
-- the plan made once without the values (generic; force_generic_plan below), which does
-- not grow with the products, as the usage statement's lapsed usage is written for
-- (in_use_of, 021). Left to choose, PostgreSQL kept planning the usage statement for
-- every call at a million products (its custom plan looked cheaper): 0.9 ms of CPU a
-- report instead of 0.25 (bench/report_plans.py).

-- The reads a pool state is computed from, written once: storage/usage_totals.py,
-- reservations.py and export_keys.py read them through these functions, and so does
-- report_usage() below. Each is one SELECT in SQL, STABLE and without options, so the
-- planner inlines it into the query that calls it (its plan is that query's plan).

-- The shard of the usage totals a product's usage is added to (004).
CREATE FUNCTION usage_shard(p_product uuid) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT get_byte(uuid_send(p_product), 15) % 16
$$;

-- What is in use per virtual account and tag at p_now (tags with none are absent): the
-- totals (004), less the usage still in them that stopped counting, products whose
-- authorization or certificate ran out since they were last recounted (the job recounts
-- them within the hour; it is usually nothing).
--
-- Its cost must not grow with the products (021), also in the plan PostgreSQL makes
-- once for a prepared statement, without knowing p_now: there it takes "<= p_now" for a
-- third of the rows, and would then read every product's usage in one scan; as a range
-- (BETWEEN) its guess is half a percent, and the usage is looked up per lapsed product
-- (OFFSET 0 keeps the lateral subquery from being joined as a whole).
CREATE FUNCTION in_use_of(p_vas bigint[], p_now timestamptz)
RETURNS TABLE (va bigint, tag text, total bigint) LANGUAGE sql STABLE AS $$
    SELECT va, tag, sum(n)::bigint FROM (
        SELECT virtual_account_id AS va, tag, in_use AS n FROM virtual_account_usage
        WHERE virtual_account_id = ANY(p_vas)
        UNION ALL SELECT p.counted_in, u.tag, -u.count FROM product_instances p
        CROSS JOIN LATERAL (SELECT tag, count FROM product_usage
            WHERE product_id = p.id OFFSET 0) AS u
        WHERE p.counted_in = ANY(p_vas) AND p.status = 'registered'
        AND least(p.authorization_expires_at, p.certificate_expires_at)
            BETWEEN '-infinity' AND p_now
    ) AS counted GROUP BY va, tag HAVING sum(n) <> 0
$$;

-- Per virtual account and tag: what active reservations hold on p_day (per product and
-- tag the larger of the confirmed and the pending code; TERM lines count to their end
-- date). The virtual accounts are filtered before the grouping: every usage report asks
-- this of its virtual account, and it must not grow with the other accounts.
CREATE FUNCTION reserved_of(p_vas bigint[], p_day date)
RETURNS TABLE (va bigint, tag text, total bigint) LANGUAGE sql STABLE AS $$
    SELECT va, tag, sum(held)::bigint FROM (
        SELECT p.virtual_account_id AS va, l.product_id, l.tag, greatest(
            sum(l.quantity) FILTER (WHERE l.stage = 'current'),
            sum(l.quantity) FILTER (WHERE l.stage = 'pending')) AS held
        FROM reservation_licenses l
        JOIN reservations r ON r.product_id = l.product_id
        JOIN product_instances p ON p.id = l.product_id
        WHERE r.status = 'active' AND p.status = 'registered'
        AND p.virtual_account_id = ANY(p_vas)
        AND (l.start_date IS NULL OR l.start_date <= p_day)
        AND (l.end_date IS NULL OR l.end_date >= p_day)
        GROUP BY p.virtual_account_id, l.product_id, l.tag
    ) AS held GROUP BY va, tag
$$;

-- Per virtual account and tag: the licenses granted as export keys (007).
CREATE FUNCTION exported_of(p_vas bigint[])
RETURNS TABLE (va bigint, tag text, total bigint) LANGUAGE sql STABLE AS $$
    SELECT virtual_account_id, tag, count(*) FROM export_keys
    WHERE virtual_account_id = ANY(p_vas) AND status = 'granted'
    GROUP BY virtual_account_id, tag
$$;

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
    in_use jsonb,
    changes jsonb,
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

    -- The usage statement (usage_totals.py: the shard, the totals added in key order);
    -- what the report changed of what is in use in its virtual account (none where its
    -- usage had lapsed: that was not in use).
    WITH new AS (SELECT tag, count FROM unnest(p_tags, p_counts) AS n(tag, count)),
    old AS (SELECT tag, count FROM product_usage WHERE product_id = p_product),
    counted AS (SELECT counted_in AS va, (authorization_expires_at <= p_now
        OR certificate_expires_at <= p_now) AS lapsed FROM product_instances
        WHERE id = p_product AND counted_in IS NOT NULL),
    deltas AS (SELECT counted.va, counted.lapsed, coalesce(new.tag, old.tag) AS tag,
        usage_shard(p_product) AS shard, coalesce(new.count, 0) - coalesce(old.count, 0) AS d
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
        DO UPDATE SET in_use = virtual_account_usage.in_use + EXCLUDED.in_use)
    SELECT coalesce(jsonb_object_agg(tag, change), '{}') INTO changes FROM (
        SELECT tag, sum(d) AS change FROM deltas
        WHERE deltas.va = v_va AND NOT deltas.lapsed GROUP BY tag HAVING sum(d) <> 0
    ) AS changed;

    -- What the positions are computed from, read after the usage statement (it sees what
    -- that wrote): what is in use, the pool lines, what reservations hold on p_day, the
    -- export keys granted; and the keys of the open alerts, when all usage was released.
    SELECT (SELECT coalesce(jsonb_object_agg(u.tag, u.total), '{}')
            FROM in_use_of(ARRAY[v_va], p_now) AS u),
        (SELECT coalesce(jsonb_agg(jsonb_build_object('id', l.id, 'tag', l.tag,
            'quantity', l.quantity, 'license_type', l.license_type,
            'start_date', l.start_date, 'end_date', l.end_date,
            'subscription_id', l.subscription_id, 'export_restricted', l.export_restricted,
            'source', l.source) ORDER BY l.tag, l.id), '[]')
            FROM license_lines l WHERE l.virtual_account_id = v_va),
        (SELECT coalesce(jsonb_object_agg(r.tag, r.total), '{}')
            FROM reserved_of(ARRAY[v_va], p_day) AS r),
        (SELECT coalesce(jsonb_object_agg(x.tag, x.total), '{}')
            FROM exported_of(ARRAY[v_va]) AS x),
        CASE WHEN cardinality(p_tags) = 0 THEN ARRAY(
            SELECT a.dedupe_key FROM alerts a
            WHERE a.account_id = product.account AND a.cleared_at IS NULL
            AND a.virtual_account_id = v_va ORDER BY a.dedupe_key) END
    INTO in_use, lines, reserved, exported, open_alerts;
    -- The pool alert lock of its virtual account (services/licenses.py), shared, last: as
    -- every change of usage takes it, after its rows and the totals (taken before them,
    -- a report waited here for a registration that waited for the report's totals row).
    -- Reports do not wait for each other; one does not commit while a shortage refresh,
    -- which takes the lock alone, reads the pool.
    PERFORM pg_advisory_xact_lock_shared(p_pool_lock_base + v_va);
    RETURN NEXT;
END
$$;
