"""SageMaker Feature Store option of a stage (README "Feature Store")."""
