"""What rtdp's DAG files share: settings from the environment, the dbt steps, the two ways of
running them (a Kubernetes pod, or a local subprocess) and the failure alert."""
