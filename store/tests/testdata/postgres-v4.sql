-- A PostgreSQL database as the release before the migrations/ directory left it (commit
-- a27607f, schema version 4): made by that commit's PostgresStore::connect, filled with one
-- row or more per table through its CaStore and IdpStore methods, then
--   pg_dump --no-owner --no-privileges --inserts --no-comments
-- with the session SET lines and psql's \restrict lines removed, so that it runs as one
-- plain SQL script. store/tests/migrations.rs loads it into a fresh database.

--
-- Name: activations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.activations (
    code_hash text NOT NULL,
    national_id text NOT NULL,
    custody text NOT NULL,
    officer text NOT NULL,
    expires_at bigint NOT NULL
);

--
-- Name: ceremony; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ceremony (
    id integer NOT NULL,
    record text NOT NULL,
    CONSTRAINT ceremony_id_check CHECK ((id = 1))
);

--
-- Name: certificates; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.certificates (
    serial bytea NOT NULL,
    issuer text NOT NULL,
    profile text NOT NULL,
    subject text NOT NULL,
    not_before bigint NOT NULL,
    not_after bigint NOT NULL,
    der bytea NOT NULL,
    issued_at bigint NOT NULL,
    status text DEFAULT 'good'::text NOT NULL,
    reason smallint,
    revoked_at bigint,
    CONSTRAINT certificates_status_check CHECK ((status = ANY (ARRAY['good'::text, 'revoked'::text])))
);

--
-- Name: citizens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.citizens (
    id text NOT NULL,
    national_id text NOT NULL,
    profile text NOT NULL,
    password_hash text NOT NULL,
    totp_secret text,
    created_at bigint NOT NULL
);

--
-- Name: clients; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.clients (
    client_id text NOT NULL,
    registration text NOT NULL,
    created_at bigint NOT NULL
);

--
-- Name: consents; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.consents (
    citizen_id text NOT NULL,
    client_id text NOT NULL,
    grant_data text NOT NULL,
    granted_at bigint NOT NULL
);

--
-- Name: crl_numbers; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.crl_numbers (
    issuer text NOT NULL,
    last bigint NOT NULL
);

--
-- Name: crls; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.crls (
    issuer text NOT NULL,
    number bigint NOT NULL,
    this_update bigint NOT NULL,
    next_update bigint NOT NULL,
    der bytea NOT NULL
);

--
-- Name: refresh_families; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.refresh_families (
    family text NOT NULL,
    client_id text NOT NULL,
    citizen_id text NOT NULL,
    grant_data text NOT NULL,
    generation bigint NOT NULL,
    issued_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    ends_at bigint NOT NULL,
    revoked boolean DEFAULT false NOT NULL
);

--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version bigint NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: signing_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.signing_keys (
    kid text NOT NULL,
    purpose text NOT NULL,
    key_ref text NOT NULL,
    algorithm text NOT NULL,
    public_jwk text NOT NULL,
    created_at bigint NOT NULL,
    active_from bigint NOT NULL
);

--
-- Name: smart_ids; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.smart_ids (
    national_id text NOT NULL,
    custody text NOT NULL,
    device_kid text NOT NULL,
    device_key text NOT NULL,
    authentication_serial text NOT NULL,
    signature_serial text NOT NULL,
    activated_at bigint NOT NULL
);

--
-- Data for Name: activations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.activations VALUES ('abababababababababababababababababababababababababababababababab', '9861234502', 'software', 'ra-1', 4000000000);

--
-- Data for Name: ceremony; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ceremony VALUES (1, '{"performed_at":"2026-11-23T00:00:00Z","country":"JO","base_url":"http://pki.hawiya.jo","authorities":[{"name":"root","profile":"root-ca","issuer":"root","key":"soft:root","algorithm":"ES384","certificate":"3000"}]}');

--
-- Data for Name: certificates; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.certificates VALUES ('\x0101', 'citizen-authentication-ca', 'citizen-authentication', 'CN=Citizen 1', 1700000000, 1800000000, '\x3001', 1700000001, 'good', NULL, NULL);
INSERT INTO public.certificates VALUES ('\x0102', 'citizen-authentication-ca', 'citizen-authentication', 'CN=Citizen 2', 1700000000, 1800000000, '\x3002', 1700000002, 'revoked', 1, 1750000000);
INSERT INTO public.certificates VALUES ('\x0103', 'citizen-signing-ca', 'citizen-authentication', 'CN=Citizen 3', 1700000000, 1800000000, '\x3003', 1700000003, 'revoked', 6, 1750000100);

--
-- Data for Name: citizens; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.citizens VALUES ('c1', '9861234501', '{"given_name":{"ar":"ليلى","en":"Layla"}}', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', 'JBSWY3DPEHPK3PXP', 1750000001);

--
-- Data for Name: clients; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.clients VALUES ('civil-status', '{"redirect_uris":["https://cs.example/cb"]}', 1750000002);

--
-- Data for Name: consents; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.consents VALUES ('c1', 'civil-status', '["name"]', 1750000003);

--
-- Data for Name: crl_numbers; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.crl_numbers VALUES ('citizen-authentication-ca', 2);

--
-- Data for Name: crls; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.crls VALUES ('citizen-authentication-ca', 2, 1750000200, 1750086600, '\x3003020102');

--
-- Data for Name: refresh_families; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.refresh_families VALUES ('fam-1', 'civil-status', 'c1', '{"scope":"openid"}', 1, 1750000004, 4000000001, 4100000000, false);

--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_migrations VALUES (1, '2026-11-29 14:59:34.560875+00');
INSERT INTO public.schema_migrations VALUES (2, '2026-11-29 14:59:34.56481+00');
INSERT INTO public.schema_migrations VALUES (3, '2026-11-29 14:59:34.56903+00');
INSERT INTO public.schema_migrations VALUES (4, '2026-11-29 14:59:34.571396+00');

--
-- Data for Name: signing_keys; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.signing_keys VALUES ('k1', 'idp-signing', 'soft:k1', 'ES256', '{"kty":"EC"}', 1750000006, 1750000066);

--
-- Data for Name: smart_ids; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.smart_ids VALUES ('9861234501', 'hardware', 'dev-1', '{"kid":"dev-1"}', '0101', '0102', 1750000007);

--
-- Name: activations activations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.activations
    ADD CONSTRAINT activations_pkey PRIMARY KEY (code_hash);

--
-- Name: ceremony ceremony_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ceremony
    ADD CONSTRAINT ceremony_pkey PRIMARY KEY (id);

--
-- Name: certificates certificates_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.certificates
    ADD CONSTRAINT certificates_pkey PRIMARY KEY (serial);

--
-- Name: citizens citizens_national_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.citizens
    ADD CONSTRAINT citizens_national_id_key UNIQUE (national_id);

--
-- Name: citizens citizens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.citizens
    ADD CONSTRAINT citizens_pkey PRIMARY KEY (id);

--
-- Name: clients clients_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.clients
    ADD CONSTRAINT clients_pkey PRIMARY KEY (client_id);

--
-- Name: consents consents_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.consents
    ADD CONSTRAINT consents_pkey PRIMARY KEY (citizen_id, client_id);

--
-- Name: crl_numbers crl_numbers_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.crl_numbers
    ADD CONSTRAINT crl_numbers_pkey PRIMARY KEY (issuer);

--
-- Name: crls crls_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.crls
    ADD CONSTRAINT crls_pkey PRIMARY KEY (issuer);

--
-- Name: refresh_families refresh_families_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.refresh_families
    ADD CONSTRAINT refresh_families_pkey PRIMARY KEY (family);

--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

--
-- Name: signing_keys signing_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.signing_keys
    ADD CONSTRAINT signing_keys_pkey PRIMARY KEY (kid);

--
-- Name: smart_ids smart_ids_device_kid_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.smart_ids
    ADD CONSTRAINT smart_ids_device_kid_key UNIQUE (device_kid);

--
-- Name: smart_ids smart_ids_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.smart_ids
    ADD CONSTRAINT smart_ids_pkey PRIMARY KEY (national_id);

--
-- Name: certificates_issued; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX certificates_issued ON public.certificates USING btree (issued_at);

--
-- Name: certificates_revoked; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX certificates_revoked ON public.certificates USING btree (issuer) WHERE (status = 'revoked'::text);

--
-- Name: refresh_families_citizen; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX refresh_families_citizen ON public.refresh_families USING btree (citizen_id, client_id);

--
-- Name: refresh_families_client; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX refresh_families_client ON public.refresh_families USING btree (client_id);
