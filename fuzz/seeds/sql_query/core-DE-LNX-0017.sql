SELECT e.pid AS pid, e.parent AS parent, e.name AS name, e.path AS path,
       e.cmdline AS cmdline, e.uid AS uid, e.start_time AS start_time,
       e.observed_at AS observed_at, e.scan_id AS scan_id
FROM process_events e
WHERE e.event = 'exit'
  AND e.name IN ('auditd', 'audispd', 'falco', 'osqueryd', 'wazuh-agentd', 'wazuh-syscheckd',
                 'wazuh-modulesd', 'wazuh-logcollec', 'wazuh-execd', 'ossec-agentd',
                 'ossec-syscheckd', 'ossec-logcollec', 'ossec-execd', 'sysdig', 'tracee',
                 'tracee-ebpf', 'tracee-rules', 'clamd', 'aide', 'auditbeat', 'filebeat',
                 'elastic-agent', 'elastic-endpoi', 'elastic-endpoint', 'falcon-sensor',
                 'falcond', 'sysmon', 'wdavdaemon', 'ds_agent', 'cbagentd')
  AND COALESCE(e.scan_id, 0) >= COALESCE((SELECT MAX(scan_id) FROM process_events), 0)
  AND NOT EXISTS (
        SELECT 1 FROM process_events s
        WHERE s.event = 'start'
          AND s.name = e.name
          AND s.pid <> e.pid
          AND COALESCE(s.scan_id, 0) >= COALESCE(e.scan_id, 0))
