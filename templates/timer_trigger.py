"""timer-trigger: A cron function that runs every five minutes.

FUNC runs on '0 */5 * * * *' (six fields, seconds first, in UTC) while
`durafn start` runs. '0 0 9 * * MON-FRI' would be 9:00 on weekdays.
"""

import logging

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.schedule(schedule="0 */5 * * * *", arg_name="timer")
def FUNC(timer: df.TimerRequest) -> None:
    """The periodic work; ``timer.past_due`` is True for a late run."""
    logger = logging.getLogger(__name__)
    if timer.past_due:
        logger.warning("FUNC is late (due at %s)", timer.scheduled_time)
    logger.info("FUNC ran (due at %s)", timer.scheduled_time)
