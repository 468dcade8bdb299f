"""Adversarial robustness of the run's CNN, an adversarially trained CNN and ABS (issue #5):
minimal perturbations in L2 and L-inf, accuracy-vs-eps curves, a noise check, distal images."""
from .adversarial_training import AdversarialConfig, adversarial_cnn, train_adversarial
from .distal import DistalConfig, distal_images
from .evaluate import ANCHORS, RobustnessConfig, robustness
from .minimal import Minima, SearchBudget
from .models import ROBUSTNESS_MODELS, load_model, parse_models

__all__ = ["ANCHORS", "ROBUSTNESS_MODELS", "AdversarialConfig", "DistalConfig", "Minima",
           "RobustnessConfig", "SearchBudget", "adversarial_cnn", "distal_images", "load_model",
           "parse_models", "robustness", "train_adversarial"]
