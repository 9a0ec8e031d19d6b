"""One FeatureService per model version: what a model was trained on is what it is served."""

from feast import FeatureService
from views import bars_1m

#: Model v1 reads every feature of the 1-minute view.
model_v1 = FeatureService(name="model_v1", features=[bars_1m], tags={"model_version": "1"})
