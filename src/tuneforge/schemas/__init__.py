"""tuneforge.schemas: pydantic models shared by every package (imports nothing else of tuneforge)."""

from tuneforge.schemas.config_errors import ConfigError, ConfigProblem
from tuneforge.schemas.config_loading import load_config_file, parse_overrides, parse_training_config
from tuneforge.schemas.parameter_reference import fields_by_group
from tuneforge.schemas.training import ALIASES, GROUPS, TrainingConfig, aliases_of

__all__ = [
    "ALIASES",
    "GROUPS",
    "ConfigError",
    "ConfigProblem",
    "TrainingConfig",
    "aliases_of",
    "fields_by_group",
    "load_config_file",
    "parse_overrides",
    "parse_training_config",
]
