"""flight-delay GitOps: will a 2013 NYC flight arrive 30+ minutes late?"""

__version__ = "0.1.0"
MODEL_NAME = "flight-delay"
