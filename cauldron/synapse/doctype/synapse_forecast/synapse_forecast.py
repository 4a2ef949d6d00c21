from cauldron.model import UUIDNamedDocument, check_range


class SynapseForecast(UUIDNamedDocument):
	def validate(self):
		check_range(self, "forecast_horizon", 1, 100_000)
