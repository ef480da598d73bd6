PRAGMA application_id = 1095779927;
PRAGMA user_version = 9;
BEGIN TRANSACTION;
CREATE TABLE apps (
                name TEXT PRIMARY KEY,
                source TEXT NOT NULL,
                repo TEXT REFERENCES repos(name) ON DELETE RESTRICT,
                local_path TEXT,
                path TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            , policy TEXT NOT NULL DEFAULT '{}', labels TEXT NOT NULL DEFAULT '{}', depends_on TEXT NOT NULL DEFAULT '[]', rollout TEXT NOT NULL DEFAULT '{}', catalog TEXT, pinned_revision INTEGER);
INSERT INTO "apps" VALUES('legacy9-hooked-@SFX@','local',NULL,'@SRC@/hooked','','2026-12-01T20:34:32.473506+00:00','2026-12-01T20:34:32.652920+00:00','{"auto":false,"forceConflicts":false,"keepResources":false,"prune":true,"replaceImmutable":false,"selfHeal":false,"takeOwnership":false,"timeoutSeconds":null}','{}','[]','{"autoPartitionSize":"25%","autoRollback":false,"healthTimeoutSeconds":null,"maxUnavailable":"100%","maxUnavailablePartitions":0,"offlineTargets":"wait","partitions":[]}',NULL,NULL);
INSERT INTO "apps" VALUES('legacy9-done-@SFX@','local',NULL,'@SRC@/done','','2026-12-01T20:34:32.481326+00:00','2026-12-01T20:34:35.528193+00:00','{"auto":false,"forceConflicts":false,"keepResources":false,"prune":true,"replaceImmutable":false,"selfHeal":false,"takeOwnership":false,"timeoutSeconds":null}','{}','[]','{"autoPartitionSize":"25%","autoRollback":false,"healthTimeoutSeconds":null,"maxUnavailable":"100%","maxUnavailablePartitions":0,"offlineTargets":"wait","partitions":[]}',NULL,NULL);
CREATE TABLE catalog_repos (
                name TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                username TEXT,
                password_file TEXT,
                ca_file TEXT,
                poll_interval_seconds INTEGER NOT NULL,
                created_at TEXT NOT NULL
            );
CREATE TABLE cluster_groups (
                name TEXT PRIMARY KEY,
                selector TEXT NOT NULL
            );
CREATE TABLE clusters (
                name TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                labels TEXT NOT NULL,
                kubeconfig_path TEXT,
                context TEXT,
                state TEXT NOT NULL,
                state_reason TEXT NOT NULL,
                k8s_version TEXT,
                distribution TEXT,
                mode TEXT,
                node_count INTEGER,
                last_seen TEXT,
                created_at TEXT NOT NULL
            );
INSERT INTO "clusters" VALUES('test-1','imported','{"appflow.dev/k8s-version":"v1.36.3","appflow.dev/kind":"imported","appflow.dev/nodes":"3","appflow.dev/sandbox":"true","env":"dev","kubernetes.io/arch":"amd64","region":"eu-west"}','@HOME@/clusters/test-1.kubeconfig',NULL,'Online','','v1.36.3','kubernetes','3-nodes',3,'2026-12-01T20:34:32.143208+00:00','2026-12-01T20:34:32.143307+00:00');
INSERT INTO "clusters" VALUES('test-2','imported','{"appflow.dev/k8s-version":"v1.36.3","appflow.dev/kind":"imported","appflow.dev/nodes":"3","appflow.dev/sandbox":"true","env":"test","kubernetes.io/arch":"amd64","region":"us-east"}','@HOME@/clusters/test-2.kubeconfig',NULL,'Online','','v1.36.3','kubernetes','3-nodes',3,'2026-12-01T20:34:32.288985+00:00','2026-12-01T20:34:32.288998+00:00');
INSERT INTO "clusters" VALUES('test-3','imported','{"appflow.dev/k8s-version":"v1.36.3","appflow.dev/kind":"imported","appflow.dev/nodes":"3","appflow.dev/sandbox":"true","env":"prod","kubernetes.io/arch":"amd64","region":"ap-south"}','@HOME@/clusters/test-3.kubeconfig',NULL,'Online','','v1.36.3','kubernetes','3-nodes',3,'2026-12-01T20:34:32.464001+00:00','2026-12-01T20:34:32.464017+00:00');
CREATE TABLE deployments (
                app TEXT NOT NULL REFERENCES apps(name) ON DELETE RESTRICT,
                cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE RESTRICT,
                desired_revision INTEGER,
                applied_revision INTEGER,
                state TEXT NOT NULL,
                message TEXT NOT NULL,
                inventory TEXT NOT NULL,
                applied TEXT NOT NULL DEFAULT '{}',
                resource_counts TEXT NOT NULL,
                failing TEXT NOT NULL,
                updated_at TEXT NOT NULL, release TEXT,
                PRIMARY KEY (app, cluster)
            );
INSERT INTO "deployments" VALUES('legacy9-hooked-@SFX@','test-2',1,NULL,'ErrApplied','app legacy9-hooked-@SFX@, cluster test-2, Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome: post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit (the cluster already changed: 2 of 2 objects were applied and 0 pruned before this; the next sync finishes it)','["v1 legacy-@SFX@_legacy9-hooked-@SFX@-settings__ConfigMap"]','{"_legacy-@SFX@__Namespace":"93d0e11d5c4bbe29:4febc7c1419c8612:089c8985-aa51-41d7-84d1-9c54cc1ef361","appflow.dev/hooks":"install-failed","legacy-@SFX@_legacy9-hooked-@SFX@-settings__ConfigMap":"67c0a9601fcf07b2:ae76f5ce0622aeb3:50dc4c8b-1be3-4d9a-9cda-a6159f0ef3ee"}','{"desiredReady":1,"errApplied":1,"missing":0,"modified":0,"notReady":0,"orphaned":0,"outOfSync":0,"ready":1,"unknown":0,"waitApplied":0}','[{"message":"post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit","object":"Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome"}]','2026-12-01T20:34:35.247124+00:00',NULL);
INSERT INTO "deployments" VALUES('legacy9-hooked-@SFX@','test-3',1,NULL,'ErrApplied','app legacy9-hooked-@SFX@, cluster test-3, Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome: post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit (the cluster already changed: 2 of 2 objects were applied and 0 pruned before this; the next sync finishes it)','["v1 legacy-@SFX@_legacy9-hooked-@SFX@-settings__ConfigMap"]','{"_legacy-@SFX@__Namespace":"93d0e11d5c4bbe29:4febc7c1419c8612:1a887326-15bd-47f3-ac63-1acce0738344","appflow.dev/hooks":"install-failed","legacy-@SFX@_legacy9-hooked-@SFX@-settings__ConfigMap":"67c0a9601fcf07b2:ae76f5ce0622aeb3:c4c8cac4-05c7-41e8-8855-9a75ec13f4ca"}','{"desiredReady":1,"errApplied":1,"missing":0,"modified":0,"notReady":0,"orphaned":0,"outOfSync":0,"ready":1,"unknown":0,"waitApplied":0}','[{"message":"post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit","object":"Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome"}]','2026-12-01T20:34:35.521111+00:00',NULL);
INSERT INTO "deployments" VALUES('legacy9-hooked-@SFX@','test-1',1,NULL,'ErrApplied','app legacy9-hooked-@SFX@, cluster test-1, Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome: post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit (the cluster already changed: 2 of 2 objects were applied and 0 pruned before this; the next sync finishes it)','["v1 legacy-@SFX@_legacy9-hooked-@SFX@-settings__ConfigMap"]','{"_legacy-@SFX@__Namespace":"93d0e11d5c4bbe29:4febc7c1419c8612:cdd62954-d1fe-4b4a-9e24-37af39bdab6f","appflow.dev/hooks":"install-failed","legacy-@SFX@_legacy9-hooked-@SFX@-settings__ConfigMap":"67c0a9601fcf07b2:ae76f5ce0622aeb3:4a87fe6f-39eb-48ef-9637-53b3c478f803"}','{"desiredReady":1,"errApplied":1,"missing":0,"modified":0,"notReady":0,"orphaned":0,"outOfSync":0,"ready":1,"unknown":0,"waitApplied":0}','[{"message":"post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit","object":"Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome"}]','2026-12-01T20:34:35.498298+00:00',NULL);
INSERT INTO "deployments" VALUES('legacy9-done-@SFX@','test-1',1,1,'Ready','1 object is healthy','["v1 legacy-@SFX@_legacy9-done-@SFX@-settings__ConfigMap"]','{"_legacy-@SFX@__Namespace":"93d0e11d5c4bbe29:4febc7c1419c8612:cdd62954-d1fe-4b4a-9e24-37af39bdab6f","appflow.dev/hooks":"e758bccccbb896197b193ebde9e9f5f91f49c1e147f3195f4eb259aec80dbd23","legacy-@SFX@_legacy9-done-@SFX@-settings__ConfigMap":"7efeb4b9d1d85f4f:128d53c6ea8e1b44:e286b538-0ee0-4a35-93f4-0070937b4da1"}','{"desiredReady":1,"errApplied":0,"missing":0,"modified":0,"notReady":0,"orphaned":0,"outOfSync":0,"ready":1,"unknown":0,"waitApplied":0}','[]','2026-12-01T20:34:38.031112+00:00',NULL);
INSERT INTO "deployments" VALUES('legacy9-done-@SFX@','test-3',1,1,'Ready','1 object is healthy','["v1 legacy-@SFX@_legacy9-done-@SFX@-settings__ConfigMap"]','{"_legacy-@SFX@__Namespace":"93d0e11d5c4bbe29:4febc7c1419c8612:1a887326-15bd-47f3-ac63-1acce0738344","appflow.dev/hooks":"e758bccccbb896197b193ebde9e9f5f91f49c1e147f3195f4eb259aec80dbd23","legacy-@SFX@_legacy9-done-@SFX@-settings__ConfigMap":"7efeb4b9d1d85f4f:128d53c6ea8e1b44:02c6e730-91d0-453d-90c3-17f3e1b93010"}','{"desiredReady":1,"errApplied":0,"missing":0,"modified":0,"notReady":0,"orphaned":0,"outOfSync":0,"ready":1,"unknown":0,"waitApplied":0}','[]','2026-12-01T20:34:37.901617+00:00',NULL);
INSERT INTO "deployments" VALUES('legacy9-done-@SFX@','test-2',1,1,'Ready','1 object is healthy','["v1 legacy-@SFX@_legacy9-done-@SFX@-settings__ConfigMap"]','{"_legacy-@SFX@__Namespace":"93d0e11d5c4bbe29:4febc7c1419c8612:089c8985-aa51-41d7-84d1-9c54cc1ef361","appflow.dev/hooks":"e758bccccbb896197b193ebde9e9f5f91f49c1e147f3195f4eb259aec80dbd23","legacy-@SFX@_legacy9-done-@SFX@-settings__ConfigMap":"7efeb4b9d1d85f4f:128d53c6ea8e1b44:478181be-d5dc-4233-b965-7a0c753af15a"}','{"desiredReady":1,"errApplied":0,"missing":0,"modified":0,"notReady":0,"orphaned":0,"outOfSync":0,"ready":1,"unknown":0,"waitApplied":0}','[]','2026-12-01T20:34:38.157944+00:00',NULL);
CREATE TABLE events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                time TEXT NOT NULL,
                app TEXT,
                cluster TEXT,
                kind TEXT NOT NULL,
                trigger TEXT,
                source_commit TEXT,
                outcome TEXT,
                message TEXT NOT NULL
            );
INSERT INTO "events" VALUES(1,'2026-12-01T20:34:35.247253+00:00','legacy9-hooked-@SFX@','test-2','failure','user','local:798045312ef4','ErrApplied','app legacy9-hooked-@SFX@, cluster test-2, Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome: post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit (the cluster already changed: 2 of 2 objects were applied and 0 pruned before this; the next sync finishes it)');
INSERT INTO "events" VALUES(2,'2026-12-01T20:34:35.498452+00:00','legacy9-hooked-@SFX@','test-1','failure','user','local:798045312ef4','ErrApplied','app legacy9-hooked-@SFX@, cluster test-1, Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome: post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit (the cluster already changed: 2 of 2 objects were applied and 0 pruned before this; the next sync finishes it)');
INSERT INTO "events" VALUES(3,'2026-12-01T20:34:35.521226+00:00','legacy9-hooked-@SFX@','test-3','failure','user','local:798045312ef4','ErrApplied','app legacy9-hooked-@SFX@, cluster test-3, Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome: post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit (the cluster already changed: 2 of 2 objects were applied and 0 pruned before this; the next sync finishes it)');
INSERT INTO "events" VALUES(4,'2026-12-01T20:34:37.901737+00:00','legacy9-done-@SFX@','test-3','sync','user','local:a323dab0f13f','Ready','1 created, 1 unchanged');
INSERT INTO "events" VALUES(5,'2026-12-01T20:34:38.031282+00:00','legacy9-done-@SFX@','test-1','sync','user','local:a323dab0f13f','Ready','1 created, 1 unchanged');
INSERT INTO "events" VALUES(6,'2026-12-01T20:34:38.158125+00:00','legacy9-done-@SFX@','test-2','sync','user','local:a323dab0f13f','Ready','1 created, 1 unchanged');
CREATE TABLE policies (
                scope TEXT NOT NULL,
                name TEXT NOT NULL,
                namespaces TEXT,
                cluster_scoped INTEGER NOT NULL,
                helm_lookup INTEGER,
                read_namespaces TEXT NOT NULL,
                helm_release INTEGER,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (scope, name)
            );
CREATE TABLE repos (
                name TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                ref TEXT NOT NULL,
                paths TEXT NOT NULL,
                auth TEXT NOT NULL,
                poll_interval_seconds INTEGER NOT NULL,
                webhook_secret_ref TEXT,
                last_commit TEXT,
                last_fetched TEXT,
                created_at TEXT NOT NULL
            );
CREATE TABLE revisions (
                app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
                number INTEGER NOT NULL,
                digest TEXT NOT NULL,
                source_ref TEXT NOT NULL,
                message TEXT NOT NULL,
                rendered BLOB NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (app, number)
            );
INSERT INTO "revisions" VALUES('legacy9-hooked-@SFX@',1,'632ec3e184c13c6668fbe10a468dbfdf0e6c4f5318dc7575329043f1e65a8ea4','{"digest":"798045312ef4","kind":"local"}','',X'789CED943F4FC33010C5BF8BE7A46D60406465438098585087AB7349AC3AB6B1AFFFA8F2DDB19BB60A2D2A08895648DEE2F8ECF7EEF9F45B33424769C6F2D73503235ED03AA115CBD93C63099B0A55F8EF2768D019E0E87F3548500001CBFD01A53401F9036EB334A6947A3128703E3476A6D01F2D41BA70ACBFE76AB018EE253B43D6264CF9FBFD5262057C95BEBD2F6FA6AC6D93AF1CEDA42B546837D27E270B976CBDDE69558AEA11CC81D74F1AB769ADF5148B4E2B75482454E55867A56BF55B3F13205E0FFB39DDEBC9E9846A94CDC0D5C3A0EEEB8DC554284720E5510C07164B611D9DF497306790079509F0A92ECB07D10862F928F16FDC18098461F3843B07AA98E8E5A0FF56B81494725D04BD510861AFC2B52210FE15DC667844035528B25809477635C02578551C6E9CE719DBF7D7B5D28E135FEB7BB7F4ACA5E0AB30673847EB45FE2AEB99A92C14C7237790F5AEEC3FA6BDF5DECF7BDFF5B913D79E2C3F1CEF054AAE9B4B479EFD2AF2ADF77EE4BB764E473E4E3AFA5E45FA46FA46FA46FA46FA5E80BED791BE91BE91BE91BE91BEE7A46FFB015339B717','2026-12-01T20:34:33.089387+00:00');
INSERT INTO "revisions" VALUES('legacy9-done-@SFX@',1,'062bdd0f2dfc25f243e370295a6dbb41898fb3882016d65adc250e3cbb5d3517','{"digest":"a323dab0f13f","kind":"local"}','',X'789CED943F4FC33010C5BF8BE7A47F604064654380985850878B7349AC3AB6B1AF6D4A95EF8EDDB4554A5161A152256F717CF67BF77CFA6D18A1A374CAB2F70D0323DED03AA115CBD872CA123617AAF0DF2FD0A033C0D1FF6A90A0000296F9034A6902F207DC76694C29F56A54E0726CEC42A13F5A8274E1D870CFD56031DC4B7681AC4B98F2F7FBA5C40AF83AFDF86CEFE6ACEB929F1CEDA52B5468B7D27E671A2ED9797DD0AA14D533986F5E8F34EED3422BEC9552874442558EF546FA467F759303F17A3C4CE951E7E7F3A9513623578F6BADE7BEDE584C857204529E847064B014D6D1597709730679D0C881CF75593E894610CB26897FDFC648200C9B67BC395045AEDBD1F09DB01594725D04BD4988E0A0C2B52210FE05DC767044035528B2580947763DC216BC2A8EB7CEB3293B74D7B7D2CD125FEB3BB7F4AAA5E0EB3063B844EB45FE2BE985A92C14A7E37694F4BEE81AB3DE791FA67DE8F9D2796BCF943F8DF60A25D7CD7506BEF33E0C7CDFCEF9C067494FDD9B48DD48DD48DD48DD48DD0B52F736523752375237523752F712D4EDBE001692AD24','2026-12-01T20:34:35.787903+00:00');
CREATE TABLE rollouts (
                app TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
                revision INTEGER,
                state TEXT NOT NULL,
                partitions TEXT NOT NULL,
                current INTEGER NOT NULL,
                message TEXT NOT NULL,
                updated_at TEXT NOT NULL
            );
CREATE TABLE sync_locks (
                app TEXT NOT NULL,
                cluster TEXT NOT NULL,
                token TEXT NOT NULL,
                owner_pid INTEGER NOT NULL,
                owner_host TEXT NOT NULL,
                started_at TEXT NOT NULL,
                heartbeat_at TEXT NOT NULL,
                PRIMARY KEY (app, cluster)
            );
CREATE TABLE syncs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                app TEXT NOT NULL,
                cluster TEXT NOT NULL,
                revision INTEGER,
                trigger TEXT NOT NULL,
                started_at TEXT NOT NULL,
                finished_at TEXT,
                outcome TEXT NOT NULL,
                counts TEXT NOT NULL,
                message TEXT NOT NULL,
                owner_host TEXT NOT NULL,
                owner_pid INTEGER NOT NULL
            , objects TEXT NOT NULL DEFAULT '{}');
INSERT INTO "syncs" VALUES(1,'legacy9-hooked-@SFX@','test-2',1,'user','2026-12-01T20:34:33.090791+00:00','2026-12-01T20:34:35.246720+00:00','failed','{"configured":0,"created":2,"kept":0,"pruned":0,"skipped":0,"unchanged":0}','app legacy9-hooked-@SFX@, cluster test-2, Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome: post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit (the cluster already changed: 2 of 2 objects were applied and 0 pruned before this; the next sync finishes it)','vm',15342,'{"_legacy-@SFX@__Namespace":"created","legacy-@SFX@_legacy9-hooked-@SFX@-settings__ConfigMap":"created"}');
INSERT INTO "syncs" VALUES(2,'legacy9-hooked-@SFX@','test-3',1,'user','2026-12-01T20:34:33.092409+00:00','2026-12-01T20:34:35.520739+00:00','failed','{"configured":0,"created":2,"kept":0,"pruned":0,"skipped":0,"unchanged":0}','app legacy9-hooked-@SFX@, cluster test-3, Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome: post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit (the cluster already changed: 2 of 2 objects were applied and 0 pruned before this; the next sync finishes it)','vm',15342,'{"_legacy-@SFX@__Namespace":"created","legacy-@SFX@_legacy9-hooked-@SFX@-settings__ConfigMap":"created"}');
INSERT INTO "syncs" VALUES(3,'legacy9-hooked-@SFX@','test-1',1,'user','2026-12-01T20:34:33.097301+00:00','2026-12-01T20:34:35.497865+00:00','failed','{"configured":0,"created":2,"kept":0,"pruned":0,"skipped":0,"unchanged":0}','app legacy9-hooked-@SFX@, cluster test-1, Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome: post-install hook Job.batch/legacy-@SFX@/legacy9-hooked-@SFX@-welcome failed: Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit (the cluster already changed: 2 of 2 objects were applied and 0 pruned before this; the next sync finishes it)','vm',15342,'{"_legacy-@SFX@__Namespace":"created","legacy-@SFX@_legacy9-hooked-@SFX@-settings__ConfigMap":"created"}');
INSERT INTO "syncs" VALUES(4,'legacy9-done-@SFX@','test-1',1,'user','2026-12-01T20:34:35.789714+00:00','2026-12-01T20:34:38.030647+00:00','succeeded','{"configured":0,"created":1,"kept":0,"pruned":0,"skipped":0,"unchanged":1}','1 created, 1 unchanged','vm',15342,'{"_legacy-@SFX@__Namespace":"unchanged","legacy-@SFX@_legacy9-done-@SFX@-settings__ConfigMap":"created"}');
INSERT INTO "syncs" VALUES(5,'legacy9-done-@SFX@','test-3',1,'user','2026-12-01T20:34:35.790806+00:00','2026-12-01T20:34:37.901160+00:00','succeeded','{"configured":0,"created":1,"kept":0,"pruned":0,"skipped":0,"unchanged":1}','1 created, 1 unchanged','vm',15342,'{"_legacy-@SFX@__Namespace":"unchanged","legacy-@SFX@_legacy9-done-@SFX@-settings__ConfigMap":"created"}');
INSERT INTO "syncs" VALUES(6,'legacy9-done-@SFX@','test-2',1,'user','2026-12-01T20:34:35.792448+00:00','2026-12-01T20:34:38.157446+00:00','succeeded','{"configured":0,"created":1,"kept":0,"pruned":0,"skipped":0,"unchanged":1}','1 created, 1 unchanged','vm',15342,'{"_legacy-@SFX@__Namespace":"unchanged","legacy-@SFX@_legacy9-done-@SFX@-settings__ConfigMap":"created"}');
CREATE TABLE tokens (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                hash TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL,
                last_used TEXT
            , scope TEXT NOT NULL DEFAULT 'admin', expires_at TEXT);
CREATE TABLE webhook_deliveries (
                key TEXT PRIMARY KEY,
                seen_at REAL NOT NULL
            );
CREATE INDEX apps_by_repo ON apps(repo);
CREATE INDEX deployments_by_cluster ON deployments(cluster);
CREATE INDEX syncs_by_app ON syncs(app, cluster, id);
CREATE INDEX syncs_running ON syncs(outcome) WHERE outcome = 'running';
CREATE INDEX events_by_app ON events(app, id);
CREATE INDEX events_by_cluster ON events(cluster, id);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries(seen_at);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('syncs',6);
INSERT INTO "sqlite_sequence" VALUES('events',6);
COMMIT;
