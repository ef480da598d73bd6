PRAGMA application_id = 1095779927;
PRAGMA user_version = 3;
BEGIN TRANSACTION;
CREATE TABLE apps (
                name TEXT PRIMARY KEY,
                source TEXT NOT NULL,
                repo TEXT REFERENCES repos(name) ON DELETE RESTRICT,
                local_path TEXT,
                path TEXT NOT NULL,
                definition TEXT NOT NULL,
                paused INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            );
INSERT INTO "apps" VALUES('legacy-plain-@SFX@','local',NULL,'@SRC@/plain','','{"kind":"yaml","namespace":"legacy-@SFX@","syncPolicy":{"auto":true,"forceConflicts":false,"prune":true,"selfHeal":true}}',0,'2026-12-01T14:06:43.970378+00:00','2026-12-01T14:06:44.097377+00:00');
INSERT INTO "apps" VALUES('legacy-rel-@SFX@','local',NULL,'@SRC@/rel','','{"kind":"helm","namespace":"legacy-@SFX@","syncPolicy":{"auto":false,"forceConflicts":false,"prune":true,"selfHeal":false}}',0,'2026-12-01T14:06:43.977642+00:00','2026-12-01T14:06:44.387252+00:00');
INSERT INTO "apps" VALUES('legacy-git-@SFX@','git','legacy-git-@SFX@',NULL,'web','{"kind":"yaml","namespace":"default","syncPolicy":{"auto":true,"forceConflicts":false,"prune":true,"selfHeal":false}}',0,'2026-12-01T14:06:44.001622+00:00','2026-12-01T14:06:46.077888+00:00');
INSERT INTO "apps" VALUES('legacy-cat-@SFX@','catalog',NULL,NULL,'tiny','{"catalog":{"chart":{"digest":"26ed05c66769952e9e16a292494031cc07a9cf2b62bc5476796057f8fcbb3fc7","folder":"@SRC@/catalog/tiny/chart","kind":"local","snapshot":"@CACHE@/catalog/charts/local-26ed05c66769952e9e16a292494031cc07a9cf2b62bc5476796057f8fcbb3fc7/tiny"},"constraint":null,"entry":"tiny","entryConstraint":"^1.0.0","folder":"@SRC@/catalog/tiny","namespace":"legacy-cat-@SFX@","repo":null,"targets":{"all":true,"clusters":[],"group":null,"selector":null},"upgradePolicy":"manual","values":{},"version":"1.0.0"},"kind":"helm","namespace":"legacy-cat-@SFX@","syncPolicy":{"auto":true,"forceConflicts":false,"prune":true,"selfHeal":false}}',0,'2026-12-01T14:06:47.892034+00:00','2026-12-01T14:06:47.892287+00:00');
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
INSERT INTO "clusters" VALUES('test-1','imported','{"appflow.dev/k8s-version":"v1.36.3","appflow.dev/kind":"imported","appflow.dev/nodes":"3","appflow.dev/sandbox":"true","env":"dev","kubernetes.io/arch":"amd64","region":"eu-west"}','@HOME@/clusters/test-1.kubeconfig',NULL,'Online','','v1.36.3','kubernetes','3-nodes',3,'2026-12-01T14:06:43.722804+00:00','2026-12-01T14:06:43.722826+00:00');
INSERT INTO "clusters" VALUES('test-2','imported','{"appflow.dev/k8s-version":"v1.36.3","appflow.dev/kind":"imported","appflow.dev/nodes":"3","appflow.dev/sandbox":"true","env":"test","kubernetes.io/arch":"amd64","region":"us-east"}','@HOME@/clusters/test-2.kubeconfig',NULL,'Online','','v1.36.3','kubernetes','3-nodes',3,'2026-12-01T14:06:43.835544+00:00','2026-12-01T14:06:43.835625+00:00');
INSERT INTO "clusters" VALUES('test-3','imported','{"appflow.dev/k8s-version":"v1.36.3","appflow.dev/kind":"imported","appflow.dev/nodes":"3","appflow.dev/sandbox":"true","env":"prod","kubernetes.io/arch":"amd64","region":"ap-south"}','@HOME@/clusters/test-3.kubeconfig',NULL,'Online','','v1.36.3','kubernetes','3-nodes',3,'2026-12-01T14:06:43.966293+00:00','2026-12-01T14:06:43.966309+00:00');
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
                updated_at TEXT NOT NULL,
                PRIMARY KEY (app, cluster)
            );
INSERT INTO "deployments" VALUES('legacy-plain-@SFX@','test-1',2,2,'Ready','all 2 objects are healthy','["v1 legacy-@SFX@_settings__ConfigMap","v1 _legacy-@SFX@__Namespace"]','{"_legacy-@SFX@__Namespace":"9e5dd585712e89d1:9461906745575b41:b1de524b-2780-484d-a16c-7fe926c0808c","legacy-@SFX@_settings__ConfigMap":"860482ebafc6c762:50596c304d2269a9:8a7a4941-d6ca-41ff-bf3a-8dc81c4503b1"}','{"desiredReady":2,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":2,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:46.499266+00:00');
INSERT INTO "deployments" VALUES('legacy-plain-@SFX@','test-2',2,2,'Ready','all 2 objects are healthy','["v1 legacy-@SFX@_settings__ConfigMap","v1 _legacy-@SFX@__Namespace"]','{"_legacy-@SFX@__Namespace":"9e5dd585712e89d1:9461906745575b41:15ba62eb-60da-490b-88ae-71146d7a1ea7","legacy-@SFX@_settings__ConfigMap":"860482ebafc6c762:50596c304d2269a9:372cda5f-5750-403c-9b58-6a63041a4b68"}','{"desiredReady":2,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":2,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:46.536223+00:00');
INSERT INTO "deployments" VALUES('legacy-plain-@SFX@','test-3',2,2,'Ready','all 2 objects are healthy','["v1 legacy-@SFX@_settings__ConfigMap","v1 _legacy-@SFX@__Namespace"]','{"_legacy-@SFX@__Namespace":"9e5dd585712e89d1:9461906745575b41:98f4b872-37f6-49c2-b598-c597d6f71c49","legacy-@SFX@_settings__ConfigMap":"860482ebafc6c762:50596c304d2269a9:bb28474b-c816-4f38-b605-745c1055f648"}','{"desiredReady":2,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":2,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:46.557949+00:00');
INSERT INTO "deployments" VALUES('legacy-rel-@SFX@','test-3',2,2,'Ready','1 object is healthy','[]','{"helm.release":"legacy-@SFX@/legacy-rel-@SFX@"}','{"desiredReady":1,"helmRevision":2,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":1,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:47.747662+00:00');
INSERT INTO "deployments" VALUES('legacy-rel-@SFX@','test-2',2,2,'Ready','1 object is healthy','[]','{"helm.release":"legacy-@SFX@/legacy-rel-@SFX@"}','{"desiredReady":1,"helmRevision":2,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":1,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:47.428156+00:00');
INSERT INTO "deployments" VALUES('legacy-rel-@SFX@','test-1',2,2,'Ready','1 object is healthy','[]','{"helm.release":"legacy-@SFX@/legacy-rel-@SFX@"}','{"desiredReady":1,"helmRevision":2,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":1,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:47.814341+00:00');
INSERT INTO "deployments" VALUES('legacy-git-@SFX@','test-3',2,2,'Ready','1 object is healthy','["v1 legacy-@SFX@_git-settings__ConfigMap"]','{"legacy-@SFX@_git-settings__ConfigMap":"8906c7938205bd34:50596c304d2269a9:6e7ba466-6ba8-429f-b048-6fc819b61c9a"}','{"desiredReady":1,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":1,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:47.870443+00:00');
INSERT INTO "deployments" VALUES('legacy-git-@SFX@','test-2',2,2,'Ready','1 object is healthy','["v1 legacy-@SFX@_git-settings__ConfigMap"]','{"legacy-@SFX@_git-settings__ConfigMap":"8906c7938205bd34:50596c304d2269a9:af81187d-4b63-41a6-b3b1-b215d5eb4cc7"}','{"desiredReady":1,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":1,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:47.883400+00:00');
INSERT INTO "deployments" VALUES('legacy-git-@SFX@','test-1',2,2,'Ready','1 object is healthy','["v1 legacy-@SFX@_git-settings__ConfigMap"]','{"legacy-@SFX@_git-settings__ConfigMap":"8906c7938205bd34:50596c304d2269a9:cebc8b5e-9d29-42d6-b264-474853a4e8c4"}','{"desiredReady":1,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":1,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:47.877343+00:00');
INSERT INTO "deployments" VALUES('legacy-cat-@SFX@','test-2',1,1,'Ready','all 2 objects are healthy','["v1 legacy-cat-@SFX@_tiny__ConfigMap","v1 _legacy-cat-@SFX@__Namespace"]','{"_legacy-cat-@SFX@__Namespace":"cbb5276bcb61f185:9461906745575b41:f07e7310-48d0-4d14-bb51-1954e63ba758","legacy-cat-@SFX@_tiny__ConfigMap":"4017a4427efd2e4d:52fb526d2f4536e3:63b1df21-0f82-469e-bd6a-5a91075ccf56"}','{"desiredReady":2,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":2,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:48.049142+00:00');
INSERT INTO "deployments" VALUES('legacy-cat-@SFX@','test-3',1,1,'Ready','all 2 objects are healthy','["v1 legacy-cat-@SFX@_tiny__ConfigMap","v1 _legacy-cat-@SFX@__Namespace"]','{"_legacy-cat-@SFX@__Namespace":"cbb5276bcb61f185:9461906745575b41:220fe419-4330-49c6-8102-16d4fb088225","legacy-cat-@SFX@_tiny__ConfigMap":"4017a4427efd2e4d:52fb526d2f4536e3:1dbea282-8600-4a8e-be13-3c59ba95316a"}','{"desiredReady":2,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":2,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:48.062090+00:00');
INSERT INTO "deployments" VALUES('legacy-cat-@SFX@','test-1',1,1,'Ready','all 2 objects are healthy','["v1 legacy-cat-@SFX@_tiny__ConfigMap","v1 _legacy-cat-@SFX@__Namespace"]','{"_legacy-cat-@SFX@__Namespace":"cbb5276bcb61f185:9461906745575b41:76d2431e-2450-41a8-a9e4-12cf1ff53b5b","legacy-cat-@SFX@_tiny__ConfigMap":"4017a4427efd2e4d:52fb526d2f4536e3:ea51ee7e-7992-422e-8976-12ab91d3db1a"}','{"desiredReady":2,"missing":0,"modified":0,"notReady":0,"orphaned":0,"ready":2,"unknown":0,"waitApplied":0}','[]','2026-12-01T14:06:48.063964+00:00');
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
INSERT INTO "events" VALUES(1,'2026-12-01T14:06:44.298875+00:00','legacy-plain-@SFX@','test-1','sync','user','local:0ca135330251','Ready','2 created');
INSERT INTO "events" VALUES(2,'2026-12-01T14:06:44.301690+00:00','legacy-plain-@SFX@',NULL,'rollout','user','local:0ca135330251','Ready','partition ''partition-1'' (test-1) is Ready');
INSERT INTO "events" VALUES(3,'2026-12-01T14:06:44.344899+00:00','legacy-plain-@SFX@','test-2','sync','user','local:0ca135330251','Ready','2 created');
INSERT INTO "events" VALUES(4,'2026-12-01T14:06:44.345741+00:00','legacy-plain-@SFX@',NULL,'rollout','user','local:0ca135330251','Ready','partition ''partition-2'' (test-2) is Ready');
INSERT INTO "events" VALUES(5,'2026-12-01T14:06:44.383203+00:00','legacy-plain-@SFX@','test-3','sync','user','local:0ca135330251','Ready','2 created');
INSERT INTO "events" VALUES(6,'2026-12-01T14:06:44.384178+00:00','legacy-plain-@SFX@',NULL,'rollout','user','local:0ca135330251','Ready','partition ''partition-3'' (test-3) is Ready');
INSERT INTO "events" VALUES(7,'2026-12-01T14:06:45.756807+00:00','legacy-rel-@SFX@','test-3','sync','user','local:1f38c3add396','Ready','1 object is healthy');
INSERT INTO "events" VALUES(8,'2026-12-01T14:06:45.890887+00:00','legacy-rel-@SFX@','test-2','sync','user','local:1f38c3add396','Ready','1 object is healthy');
INSERT INTO "events" VALUES(9,'2026-12-01T14:06:45.900414+00:00','legacy-rel-@SFX@','test-1','sync','user','local:1f38c3add396','Ready','1 object is healthy');
INSERT INTO "events" VALUES(10,'2026-12-01T14:06:46.138791+00:00','legacy-git-@SFX@','test-3','sync','user','dbf725852966ea074dc80017f3ebee8283ba0e66','Ready','1 created');
INSERT INTO "events" VALUES(11,'2026-12-01T14:06:46.141117+00:00','legacy-git-@SFX@','test-2','sync','user','dbf725852966ea074dc80017f3ebee8283ba0e66','Ready','1 created');
INSERT INTO "events" VALUES(12,'2026-12-01T14:06:46.235519+00:00','legacy-git-@SFX@','test-1','sync','user','dbf725852966ea074dc80017f3ebee8283ba0e66','Ready','1 created');
INSERT INTO "events" VALUES(13,'2026-12-01T14:06:46.499326+00:00','legacy-plain-@SFX@','test-1','sync','user','local:6241b4f029b1','Ready','1 configured, 1 unchanged');
INSERT INTO "events" VALUES(14,'2026-12-01T14:06:46.503644+00:00','legacy-plain-@SFX@',NULL,'rollout','user','local:6241b4f029b1','Ready','partition ''partition-1'' (test-1) is Ready');
INSERT INTO "events" VALUES(15,'2026-12-01T14:06:46.536301+00:00','legacy-plain-@SFX@','test-2','sync','user','local:6241b4f029b1','Ready','1 configured, 1 unchanged');
INSERT INTO "events" VALUES(16,'2026-12-01T14:06:46.537036+00:00','legacy-plain-@SFX@',NULL,'rollout','user','local:6241b4f029b1','Ready','partition ''partition-2'' (test-2) is Ready');
INSERT INTO "events" VALUES(17,'2026-12-01T14:06:46.558002+00:00','legacy-plain-@SFX@','test-3','sync','user','local:6241b4f029b1','Ready','1 configured, 1 unchanged');
INSERT INTO "events" VALUES(18,'2026-12-01T14:06:46.560459+00:00','legacy-plain-@SFX@',NULL,'rollout','user','local:6241b4f029b1','Ready','partition ''partition-3'' (test-3) is Ready');
INSERT INTO "events" VALUES(19,'2026-12-01T14:06:47.428212+00:00','legacy-rel-@SFX@','test-2','sync','user','local:375616437aa8','Ready','1 object is healthy');
INSERT INTO "events" VALUES(20,'2026-12-01T14:06:47.747709+00:00','legacy-rel-@SFX@','test-3','sync','user','local:375616437aa8','Ready','1 object is healthy');
INSERT INTO "events" VALUES(21,'2026-12-01T14:06:47.814388+00:00','legacy-rel-@SFX@','test-1','sync','user','local:375616437aa8','Ready','1 object is healthy');
INSERT INTO "events" VALUES(22,'2026-12-01T14:06:47.870490+00:00','legacy-git-@SFX@','test-3','sync','user','26a54dd7f849c70a0646b6961ea94f0a87af5cbb','Ready','1 configured');
INSERT INTO "events" VALUES(23,'2026-12-01T14:06:47.877385+00:00','legacy-git-@SFX@','test-1','sync','user','26a54dd7f849c70a0646b6961ea94f0a87af5cbb','Ready','1 configured');
INSERT INTO "events" VALUES(24,'2026-12-01T14:06:47.883443+00:00','legacy-git-@SFX@','test-2','sync','user','26a54dd7f849c70a0646b6961ea94f0a87af5cbb','Ready','1 configured');
INSERT INTO "events" VALUES(25,'2026-12-01T14:06:48.049198+00:00','legacy-cat-@SFX@','test-2','sync','user','catalog:tiny@1.0.0','Ready','2 created');
INSERT INTO "events" VALUES(26,'2026-12-01T14:06:48.062141+00:00','legacy-cat-@SFX@','test-3','sync','user','catalog:tiny@1.0.0','Ready','2 created');
INSERT INTO "events" VALUES(27,'2026-12-01T14:06:48.064009+00:00','legacy-cat-@SFX@','test-1','sync','user','catalog:tiny@1.0.0','Ready','2 created');
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
INSERT INTO "repos" VALUES('legacy-git-@SFX@','file://@SRC@/gitrepo','main','["web"]','{}',60,NULL,NULL,NULL,'2026-12-01T14:06:43.983835+00:00');
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
INSERT INTO "revisions" VALUES('legacy-plain-@SFX@',1,'cb2e0fc570ed1b311049dba330dc4679fb601e8f7d17947d21e8d1df4ce75156','local:0ca135330251','',X'789CE58FBD0E82401084DF65EB53831626B4D65ADA188B0D2C970BB09CDC8A3FE4DEDD15B051DF806E7F32DFCCF420146491407AEA01BD3B521B5CC39042978081D271AEF3016B0A1E33D2534D82390A42AA02E64650541086D5FBA26A6ECB9CBA956FAF4C2A2DB00A04D1002B43F78A2C668FC5E579DF9610A3F9E7FAC15B626A07BC7E923764CAB36BB870768FFE2BCFE41148C4B10D30BA8EC97FACCF66ECBE9E71F7CD1CBBC717ED5FFFAC','2026-12-01T14:06:44.274965+00:00');
INSERT INTO "revisions" VALUES('legacy-rel-@SFX@',1,'cf44838a597b142fef1c456077a72470511bfe923f9f3ef68f9b5141e0e124a6','local:1f38c3add396','',X'789CCD8E310EC2301004FFB2B553180A24B7D4B43488E2941C9695E462EC13022CFF1D47116F806EB5B32B4D8172D6CEC25D0A288633A71C1681C3C3C2602025B802CFC289742316D5600C32B47C5CE416FC89621BCFACF43D08CDDC70E2A9CBAC1AC4E7B658DB1CA95FD1C49EFA57777F3F0F236ABD9ACD64F73726FBDF9BD40F65028A37','2026-12-01T14:06:44.522637+00:00');
INSERT INTO "revisions" VALUES('legacy-git-@SFX@',1,'38fe4184b9b6f5f4319137e3751798dd00059c4f7c39e03dc9206bec33c65b52','dbf725852966ea074dc80017f3ebee8283ba0e66','',X'789CCD8E310EC2301004FFB2B55D180A24B7D4B43488E2941C96157231F109052CFF1D47116F806EB5B32B4D817256EBE02F0594E299E71C2781C7D3C1A02725F882C0C233E9461CAAC110A56FF938C92D8613A5361E59E97B101AB9E110D566568D12725BAC6D4ED4ADE8CE81BA977DBC97C3805AAF6633D9FD8DC9FEF726F50366E88A3A','2026-12-01T14:06:46.115375+00:00');
INSERT INTO "revisions" VALUES('legacy-plain-@SFX@',2,'13cc16eac02bbba5e18d9b949ca60cfd87bf3b87a320eb75b10dc97dc8c2e9c2','local:6241b4f029b1','',X'789CE58FBD0E82401084DF65EB43031626B4D65ADA188B0D2C970BB077722BFE907B774FC0467D03BAFDC97C33338090972485FC34003A73A4CE1BCB90439F8282DA7019E703B6E41D16144F2D099628087914305B4189023FAECE558DBDAD4AEAD7AEBB324569858D27080A3832E2DE90C6E2915C9EF76D0D21A87FAE1FBC26A66EC4C74FF686CC7976962BA3F7E8BEF2CC1E9E440C6B0F93EB94FCC7FAACA6EED982BB6F96D83DBC00F14CFFAF','2026-12-01T14:06:46.399693+00:00');
INSERT INTO "revisions" VALUES('legacy-rel-@SFX@',2,'fac28ba72b8acb31d12a5774ae57de4492e6fac23f815b65c894489e8411a875','local:375616437aa8','',X'789CCD8E310EC2301004FFB2B5532414486EA9696910C529392C2BC9C5D82714B0FC771C45BC01BAD5CEAE3419CA499B16F69A41C15F3826BF082C9E2D0C065282CD702C1C4977D2A1188C5E869A4F8BDCBD3B53A8E39995BE07A1992B8E3C358955BDB854175B9B02F51B9AD851FF6A1EEFF538A2949BD94DBABF3139FCDEA47C0067A58A3A','2026-12-01T14:06:46.672268+00:00');
INSERT INTO "revisions" VALUES('legacy-git-@SFX@',2,'d2170aae5fd1635d214e2f1ca68de26396c3a45f7b19ba415a6cf627ea519fa5','26a54dd7f849c70a0646b6961ea94f0a87af5cbb','',X'789CCD8EB10AC2401044FF65EA4B915808D75ADBDA88C592ACC712B339738BA8C7FDBB1782DFA0DD306F065E8671B2A6853F675094132F496685C7A385C34046F019819517B28D74280EA3E850F361D6AB8423C53A9ED8E87B509AB8E220D62436130DA92ED63645EA5774E340FDABB9BF9FFB11A55CDC66D2FD8DC9EEF726E503698B8A3D','2026-12-01T14:06:47.839756+00:00');
INSERT INTO "revisions" VALUES('legacy-cat-@SFX@',1,'9ffebad2a01258e354061e2311b5f227b53337d9079ecdb0d9660a5a86103708','catalog:tiny@1.0.0','',X'789CE590B10E82401044FF65EB43831626B4D65ADA188B0D2C78E1B83BB9154572FFEE2AD818FE806E6793993799019802272964E701D0EB13B5413B0B19742928A8B52DE43E6243C1634EF26A88B14046C8C460AD63643184AFF4BE34EEB12AA85BFBF66E49AC259A40101558C9106DA8C2BC4F72E4E4F67AEE6A8851CD917F88AA25626D2BF95FC918F7899A5AED9D2D757540FFD76A2289AB87913B769F855FD4B8C066F10B6C97BB407C03D53A0636','2026-12-01T14:06:48.017900+00:00');
CREATE TABLE rollouts (
                app TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
                revision INTEGER,
                state TEXT NOT NULL,
                partitions TEXT NOT NULL,
                current INTEGER NOT NULL,
                message TEXT NOT NULL,
                updated_at TEXT NOT NULL
            );
INSERT INTO "rollouts" VALUES('legacy-plain-@SFX@',2,'Paused','[{"clusters":["test-1"],"maxUnavailable":1,"message":"","name":"partition-1","state":"Ready"},{"clusters":["test-2"],"maxUnavailable":1,"message":"","name":"partition-2","state":"Ready"},{"clusters":["test-3"],"maxUnavailable":1,"message":"","name":"partition-3","state":"Ready"}]',3,'paused by user','2026-12-01T14:06:48.065163+00:00');
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
            );
INSERT INTO "syncs" VALUES(1,'legacy-plain-@SFX@','test-1',1,'user','2026-12-01T14:06:44.280790+00:00','2026-12-01T14:06:44.298619+00:00','succeeded','{"configured":0,"created":2,"pruned":0,"skipped":0,"unchanged":0}','2 created','vm',20035);
INSERT INTO "syncs" VALUES(2,'legacy-plain-@SFX@','test-2',1,'user','2026-12-01T14:06:44.316307+00:00','2026-12-01T14:06:44.344686+00:00','succeeded','{"configured":0,"created":2,"pruned":0,"skipped":0,"unchanged":0}','2 created','vm',20035);
INSERT INTO "syncs" VALUES(3,'legacy-plain-@SFX@','test-3',1,'user','2026-12-01T14:06:44.366355+00:00','2026-12-01T14:06:44.383007+00:00','succeeded','{"configured":0,"created":2,"pruned":0,"skipped":0,"unchanged":0}','2 created','vm',20035);
INSERT INTO "syncs" VALUES(4,'legacy-rel-@SFX@','test-2',1,'user','2026-12-01T14:06:44.523451+00:00','2026-12-01T14:06:45.890443+00:00','succeeded','{"configured":0,"created":0,"helmRevision":1,"pruned":0,"skipped":0,"unchanged":0}','1 object is healthy','vm',20035);
INSERT INTO "syncs" VALUES(5,'legacy-rel-@SFX@','test-1',1,'user','2026-12-01T14:06:44.523487+00:00','2026-12-01T14:06:45.900201+00:00','succeeded','{"configured":0,"created":0,"helmRevision":1,"pruned":0,"skipped":0,"unchanged":0}','1 object is healthy','vm',20035);
INSERT INTO "syncs" VALUES(6,'legacy-rel-@SFX@','test-3',1,'user','2026-12-01T14:06:44.523500+00:00','2026-12-01T14:06:45.756500+00:00','succeeded','{"configured":0,"created":0,"helmRevision":1,"pruned":0,"skipped":0,"unchanged":0}','1 object is healthy','vm',20035);
INSERT INTO "syncs" VALUES(7,'legacy-git-@SFX@','test-3',1,'user','2026-12-01T14:06:46.116326+00:00','2026-12-01T14:06:46.137960+00:00','succeeded','{"configured":0,"created":1,"pruned":0,"skipped":0,"unchanged":0}','1 created','vm',20035);
INSERT INTO "syncs" VALUES(8,'legacy-git-@SFX@','test-2',1,'user','2026-12-01T14:06:46.116478+00:00','2026-12-01T14:06:46.140936+00:00','succeeded','{"configured":0,"created":1,"pruned":0,"skipped":0,"unchanged":0}','1 created','vm',20035);
INSERT INTO "syncs" VALUES(9,'legacy-git-@SFX@','test-1',1,'user','2026-12-01T14:06:46.116491+00:00','2026-12-01T14:06:46.235304+00:00','succeeded','{"configured":0,"created":1,"pruned":0,"skipped":0,"unchanged":0}','1 created','vm',20035);
INSERT INTO "syncs" VALUES(10,'legacy-plain-@SFX@','test-1',2,'user','2026-12-01T14:06:46.404351+00:00','2026-12-01T14:06:46.499076+00:00','succeeded','{"configured":1,"created":0,"pruned":0,"skipped":0,"unchanged":1}','1 configured, 1 unchanged','vm',20035);
INSERT INTO "syncs" VALUES(11,'legacy-plain-@SFX@','test-2',2,'user','2026-12-01T14:06:46.513050+00:00','2026-12-01T14:06:46.536028+00:00','succeeded','{"configured":1,"created":0,"pruned":0,"skipped":0,"unchanged":1}','1 configured, 1 unchanged','vm',20035);
INSERT INTO "syncs" VALUES(12,'legacy-plain-@SFX@','test-3',2,'user','2026-12-01T14:06:46.541563+00:00','2026-12-01T14:06:46.557800+00:00','succeeded','{"configured":1,"created":0,"pruned":0,"skipped":0,"unchanged":1}','1 configured, 1 unchanged','vm',20035);
INSERT INTO "syncs" VALUES(13,'legacy-rel-@SFX@','test-1',2,'user','2026-12-01T14:06:46.673084+00:00','2026-12-01T14:06:47.814193+00:00','succeeded','{"configured":0,"created":0,"helmRevision":2,"pruned":0,"skipped":0,"unchanged":0}','1 object is healthy','vm',20035);
INSERT INTO "syncs" VALUES(14,'legacy-rel-@SFX@','test-2',2,'user','2026-12-01T14:06:46.673115+00:00','2026-12-01T14:06:47.427942+00:00','succeeded','{"configured":0,"created":0,"helmRevision":2,"pruned":0,"skipped":0,"unchanged":0}','1 object is healthy','vm',20035);
INSERT INTO "syncs" VALUES(15,'legacy-rel-@SFX@','test-3',2,'user','2026-12-01T14:06:46.673128+00:00','2026-12-01T14:06:47.747510+00:00','succeeded','{"configured":0,"created":0,"helmRevision":2,"pruned":0,"skipped":0,"unchanged":0}','1 object is healthy','vm',20035);
INSERT INTO "syncs" VALUES(16,'legacy-git-@SFX@','test-3',2,'user','2026-12-01T14:06:47.840937+00:00','2026-12-01T14:06:47.870288+00:00','succeeded','{"configured":1,"created":0,"pruned":0,"skipped":0,"unchanged":0}','1 configured','vm',20035);
INSERT INTO "syncs" VALUES(17,'legacy-git-@SFX@','test-1',2,'user','2026-12-01T14:06:47.841138+00:00','2026-12-01T14:06:47.877199+00:00','succeeded','{"configured":1,"created":0,"pruned":0,"skipped":0,"unchanged":0}','1 configured','vm',20035);
INSERT INTO "syncs" VALUES(18,'legacy-git-@SFX@','test-2',2,'user','2026-12-01T14:06:47.841122+00:00','2026-12-01T14:06:47.883273+00:00','succeeded','{"configured":1,"created":0,"pruned":0,"skipped":0,"unchanged":0}','1 configured','vm',20035);
INSERT INTO "syncs" VALUES(19,'legacy-cat-@SFX@','test-1',1,'user','2026-12-01T14:06:48.019533+00:00','2026-12-01T14:06:48.063823+00:00','succeeded','{"configured":0,"created":2,"pruned":0,"skipped":0,"unchanged":0}','2 created','vm',20035);
INSERT INTO "syncs" VALUES(20,'legacy-cat-@SFX@','test-3',1,'user','2026-12-01T14:06:48.019705+00:00','2026-12-01T14:06:48.061962+00:00','succeeded','{"configured":0,"created":2,"pruned":0,"skipped":0,"unchanged":0}','2 created','vm',20035);
INSERT INTO "syncs" VALUES(21,'legacy-cat-@SFX@','test-2',1,'user','2026-12-01T14:06:48.019718+00:00','2026-12-01T14:06:48.048995+00:00','succeeded','{"configured":0,"created":2,"pruned":0,"skipped":0,"unchanged":0}','2 created','vm',20035);
CREATE TABLE tokens (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                hash TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL,
                last_used TEXT
            );
CREATE INDEX apps_by_repo ON apps(repo);
CREATE INDEX deployments_by_cluster ON deployments(cluster);
CREATE INDEX syncs_by_app ON syncs(app, cluster, id);
CREATE INDEX syncs_running ON syncs(outcome) WHERE outcome = 'running';
CREATE INDEX events_by_app ON events(app, id);
CREATE INDEX events_by_cluster ON events(cluster, id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('syncs',21);
INSERT INTO "sqlite_sequence" VALUES('events',27);
COMMIT;
