"""Names of the metrics of :mod:`creative_metrics.tfma_metrics` and of the keys they emit."""

NSCTR_NAME = "nsctr"
SCTR_NAME = "sctr"
CALIBRATED_SCTR_NAME = "calibrated_sctr"
GAUC_NAME = "gauc"
TRUE_POLICY_CTR_NAME = "true_policy_ctr"

# Suffixes of the auxiliary keys, appended to the metric's name.
COVERAGE = "_coverage"
IMPRESSIONS = "_impressions"
MATCHED_IMPRESSIONS = "_matched_impressions"
EXPOSURE = "_exposure"
LOGGED_CTR = "_logged_ctr"
MAX_ABS_ERROR = "_max_abs_error"

# TruePolicyCTR key names (prefixed with its ``key_prefix``).
TRUE_CTR_SELECTED = "true_ctr_selected"
TRUE_CTR_RANDOM = "true_ctr_random"
TRUE_CTR_ORACLE = "true_ctr_oracle"
TRUE_CTR_LOGGED = "true_ctr_logged"
LIFT_SHARE = "lift_share"
TRUE_CTR_IMPRESSIONS = "true_ctr_impressions"

# Off-policy estimators (creative_metrics.off_policy) and their auxiliary key suffixes.
IPW_NAME = "ipw"
SNIPW_NAME = "snipw"
DR_NAME = "dr"
MEAN_WEIGHT = "_mean_weight"
EFFECTIVE_SAMPLE_SIZE = "_effective_sample_size"
DIRECT = "_direct"
