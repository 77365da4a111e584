"""PROJECT: a durafn function app.

Run it with `durafn start`. Add functions with
`durafn new --template ID --name NAME` (`durafn templates` lists the ids).
"""

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.FUNCTION)
