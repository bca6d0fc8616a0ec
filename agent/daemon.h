/* daemon.h -- `mtasts-agent run`: the agent daemon. */
#ifndef MTASTS_DAEMON_H
#define MTASTS_DAEMON_H

/*
 * The `run` command: argv[0] is "run", then --config FILE and optionally
 * -n (check the configuration, print "configuration OK" or every error,
 * and exit).  Runs until SIGTERM or SIGINT.  Returns the exit status: 0,
 * 1 for a bad configuration, 2 for usage or a failure to start.
 */
int daemon_cmd(int argc, char **argv);

#endif
