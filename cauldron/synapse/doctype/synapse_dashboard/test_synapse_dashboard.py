import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import make


class TestSynapseDashboard(FrappeTestCase):
	def test_components_are_the_dashboards_rows_in_sql_and_go_with_it(self):
		dashboard = make(
			"Synapse Dashboard",
			components=[
				{"component_type": "kpi", "title": "Revenue"},
				{"component_type": "chart", "title": "Churn", "chart_type": "line"},
			],
		)
		cur = db.cursor()
		query = "SELECT title FROM synapse.dashboard_components WHERE dashboard_id = %s ORDER BY title"
		cur.execute(query, (dashboard.name,))
		self.assertEqual(cur.fetchall(), [("Churn",), ("Revenue",)])
		frappe.delete_doc("Synapse Dashboard", dashboard.name)
		cur.execute(query, (dashboard.name,))
		self.assertEqual(cur.fetchall(), [])

	def test_the_creator_defaults_to_the_session_user(self):
		self.assertEqual(make("Synapse Dashboard").created_by, frappe.session.user)
